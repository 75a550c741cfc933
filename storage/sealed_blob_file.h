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

// Seals `plaintext` to `path` and returns the hex SHA-256 of the file as written, so the file
// can be checked for damage without its key.
std::string write_sealed_blob(const std::filesystem::path& path, std::string_view plaintext,
                              const privacy::SecretKey& key, const privacy::RecordRef& where);

// Opens the file (kAuthentication naming the record when a byte changed or the file was moved),
// then checks the recorded SHA-256 (kCorruptFile when an older sealed version was put back).
std::string read_sealed_blob(const std::filesystem::path& path, const std::string& sha256_hex,
                             const privacy::SecretKey& key, const privacy::RecordRef& where);

std::string sha256_hex(std::string_view bytes);

}  // namespace hearth::storage
