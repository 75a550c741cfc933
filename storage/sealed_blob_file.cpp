#include "storage/sealed_blob_file.h"

#include <openssl/evp.h>
#include <sodium.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "privacy/sealed_file.h"

namespace hearth::storage {

std::string sha256_hex(std::string_view bytes) {
  privacy::ensure_sodium();
  // OpenSSL's SHA-256 uses the CPU's SHA extensions (or AVX2): ~5x libsodium's portable one,
  // which took 170 ms of the ~260 ms of opening a 35 MB sealed adapter.
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  require(EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) == 1 &&
              length == crypto_hash_sha256_BYTES,
          ErrorCode::kInternal, "SHA-256 failed (OpenSSL)");
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, length);
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
  // a file swapped for an older, validly sealed version of the same record. One read serves both.
  const std::string sealed = read_file(path);
  std::string plain = privacy::open_sealed_bytes(sealed, key, where, path.string());
  require(sha256_hex(sealed) == sha256, ErrorCode::kCorruptFile,
          path.string() + " is not the version recorded for " + where.describe() + " (SHA-256 differs)");
  return plain;
}

}  // namespace hearth::storage
