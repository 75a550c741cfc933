#include "storage/sealed_blob_file.h"

#include <sodium.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "privacy/sealed_file.h"

namespace hearth::storage {

std::string sha256_hex(std::string_view bytes) {
  privacy::ensure_sodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

std::string write_sealed_blob(const std::filesystem::path& path, std::string_view plaintext,
                              const privacy::SecretKey& key, const privacy::RecordRef& where) {
  privacy::seal_file(path, plaintext, key, where);
  return sha256_hex(read_file(path));
}

std::string read_sealed_blob(const std::filesystem::path& path, const std::string& sha256,
                             const privacy::SecretKey& key, const privacy::RecordRef& where) {
  // Authenticity first, so a changed byte reports the record; then the digest, which catches
  // a file swapped for an older, validly sealed version of the same record.
  std::string plain = privacy::open_sealed_file(path, key, where);
  require(sha256_hex(read_file(path)) == sha256, ErrorCode::kCorruptFile,
          path.string() + " is not the version recorded for " + where.describe() + " (SHA-256 differs)");
  return plain;
}

}  // namespace hearth::storage
