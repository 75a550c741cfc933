#include "storage/sealed_blob_file.h"

#include <openssl/evp.h>
#include <sodium.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "privacy/sealed_file.h"

namespace hearth::storage {

namespace {

std::string hex(std::string_view bytes) {
  std::string out(2 * bytes.size() + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  out.pop_back();
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  privacy::ensure_sodium();
  // OpenSSL's SHA-256 uses the CPU's SHA extensions (or AVX2): ~5x libsodium's portable one,
  // which took 170 ms of the ~260 ms of opening a 35 MB sealed adapter.
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  require(EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) == 1 &&
              length == crypto_hash_sha256_BYTES,
          ErrorCode::kInternal, "SHA-256 failed (OpenSSL)");
  return hex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

SealedBlobStamp write_sealed_blob(const std::filesystem::path& path, std::string_view plaintext,
                                  const privacy::SecretKey& key, const privacy::RecordRef& where) {
  privacy::seal_file(path, plaintext, key, where);
  const std::string written = read_file(path);
  return {sha256_hex(written), hex(privacy::sealed_file_nonce(written))};
}

std::string read_sealed_blob(const std::filesystem::path& path, const SealedBlobStamp& recorded,
                             const privacy::SecretKey& key, const privacy::RecordRef& where) {
  // Authenticity first, so a changed byte reports the record; then the version, which catches a
  // file swapped for an older, validly sealed one of the same record id. Once the file
  // authenticates its nonce identifies it, so only rows without one pay for hashing the file.
  const std::string sealed = read_file(path);
  std::string plain = privacy::open_sealed_bytes(sealed, key, where, path.string());
  const bool recorded_version = recorded.nonce.empty() ? sha256_hex(sealed) == recorded.sha256
                                                       : hex(privacy::sealed_file_nonce(sealed)) == recorded.nonce;
  if (!recorded_version) {
    privacy::wipe(plain);
    fail(ErrorCode::kCorruptFile, path.string() + " is not the version recorded for " + where.describe() +
                                      (recorded.nonce.empty() ? " (SHA-256 differs)" : " (its seal differs)"));
  }
  return plain;
}

}  // namespace hearth::storage
