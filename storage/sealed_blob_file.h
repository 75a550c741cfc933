// Writing and reading the sealed files the registry points at (adapters, checkpoints): the
// path under the user's folder, the seal, and the SHA-256 of the sealed bytes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "privacy/aead.h"
#include "privacy/secret_key.h"

namespace hearth::storage {

// What a row records of its sealed file: the SHA-256 of the file, so `doctor` can check it for
// damage without its key, and the seal's nonce (hex), which names the version sealed.
struct SealedBlobStamp {
  std::string sha256;
  std::string nonce;  // '' for files written before schema 3
};

// Seals `plaintext` to `path` and returns the stamp of the file as written.
SealedBlobStamp write_sealed_blob(const std::filesystem::path& path, std::string_view plaintext,
                                  const privacy::SecretKey& key, const privacy::RecordRef& where);

// Opens the file (kAuthentication naming the record when a byte changed or the file was moved),
// then checks it is the version recorded (kCorruptFile when an older sealed version was put
// back): by the nonce when the row has one, else by the SHA-256.
std::string read_sealed_blob(const std::filesystem::path& path, const SealedBlobStamp& recorded,
                             const privacy::SecretKey& key, const privacy::RecordRef& where);

std::string sha256_hex(std::string_view bytes);

}  // namespace hearth::storage
