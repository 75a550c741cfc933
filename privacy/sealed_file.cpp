#include "privacy/sealed_file.h"

#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"

namespace hearth::privacy {

namespace {
constexpr size_t kMagicBytes = 8;
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = kMagicBytes + 4;
}  // namespace

void seal_file(const std::filesystem::path& path, std::string_view plaintext, const SecretKey& key,
               const RecordRef& where) {
  std::string header(kSealedFileMagic, kMagicBytes);
  for (int i = 0; i < 4; ++i) header.push_back(static_cast<char>((kVersion >> (8 * i)) & 0xff));
  AtomicFileWriter writer(path);  // creates the temporary file with mode 0600
  writer.append(header);
  writer.append(seal(key, plaintext, where));
  writer.commit();
}

std::string_view sealed_file_nonce(std::string_view bytes) {
  constexpr size_t kNonceBytes = kSealOverhead - 16;
  return bytes.size() < kHeaderBytes + kNonceBytes ? std::string_view() : bytes.substr(kHeaderBytes, kNonceBytes);
}

std::string open_sealed_file(const std::filesystem::path& path, const SecretKey& key, const RecordRef& where) {
  return open_sealed_bytes(read_file(path), key, where, path.string());
}

std::string open_sealed_bytes(std::string_view bytes, const SecretKey& key, const RecordRef& where,
                              const std::string& name) {
  require(bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), kSealedFileMagic, kMagicBytes) == 0,
          ErrorCode::kCorruptFile, name + " is not a Hearth sealed file");
  uint32_t version = 0;
  for (int i = 0; i < 4; ++i) version |= uint32_t(static_cast<uint8_t>(bytes[kMagicBytes + i])) << (8 * i);
  require(version == kVersion, ErrorCode::kUnsupported,
          name + " is sealed-file version " + std::to_string(version) + "; this Hearth reads version 1");
  try {
    return open(key, bytes.substr(kHeaderBytes), where);
  } catch (const Error& e) {
    fail(e.code(), std::string(e.what()) + " (file " + name + ")");
  }
}

}  // namespace hearth::privacy
