// Encrypted files for adapters and checkpoints: the plaintext exists only in memory; on disk
// there is a small header and one XChaCha20-Poly1305 ciphertext bound to the file's record.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include "privacy/aead.h"
#include "privacy/secret_key.h"

namespace hearth::privacy {

// File layout: "HRTHSEAL" (8 bytes), format version 1 (4 bytes little-endian), then
// seal()'s nonce || ciphertext || tag over the plaintext with `where` as associated data.
inline constexpr char kSealedFileMagic[9] = "HRTHSEAL";

// Seals `plaintext` and writes it to `path` atomically (temporary name, fsync, rename) with
// mode 0600. Only ciphertext ever touches the disk.
void seal_file(const std::filesystem::path& path, std::string_view plaintext, const SecretKey& key,
               const RecordRef& where);

// Reads and opens a sealed file into memory. kCorruptFile for a foreign file,
// kAuthentication naming the record for a changed byte, a wrong key or a moved file.
std::string open_sealed_file(const std::filesystem::path& path, const SecretKey& key, const RecordRef& where);
// The seal's random nonce in a sealed file's bytes (empty when too short to hold one).
std::string_view sealed_file_nonce(std::string_view bytes);
// The same checks over a sealed file's bytes already in memory; `name` stands for the path.
std::string open_sealed_bytes(std::string_view bytes, const SecretKey& key, const RecordRef& where,
                              const std::string& name);

}  // namespace hearth::privacy
