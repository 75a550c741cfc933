#include "privacy/aead.h"

#include <sodium.h>

#include "core/error.h"

namespace hearth::privacy {

namespace {
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kNonce + kTag == kSealOverhead, "seal overhead must match libsodium");
}  // namespace

std::string RecordRef::associated_data() const {
  return "user:" + std::to_string(user_id) + "|kind:" + kind + "|record:" + std::to_string(record_id);
}

std::string RecordRef::describe() const {
  return kind + " record " + std::to_string(record_id) + " of user " + std::to_string(user_id);
}

std::string seal(const SecretKey& key, std::string_view plaintext, const RecordRef& where) {
  ensure_sodium();
  const std::string ad = where.associated_data();
  std::string out(kNonce + plaintext.size() + kTag, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, kNonce);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      nonce + kNonce, &written, reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
      reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr, nonce, key.data());
  out.resize(kNonce + written);
  return out;
}

std::string open(const SecretKey& key, std::string_view sealed, const RecordRef& where) {
  ensure_sodium();
  require(sealed.size() >= kSealOverhead, ErrorCode::kAuthentication,
          "cannot open " + where.describe() + ": ciphertext is truncated (" + std::to_string(sealed.size()) +
              " bytes)");
  const std::string ad = where.associated_data();
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string out(sealed.size() - kSealOverhead, '\0');
  unsigned long long written = 0;
  int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
      reinterpret_cast<unsigned char*>(out.data()), &written, nullptr, nonce + kNonce, sealed.size() - kNonce,
      reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nonce, key.data());
  if (rc != 0) {
    fail(ErrorCode::kAuthentication, "cannot open " + where.describe() +
                                         ": authentication failed (the ciphertext was altered, moved from "
                                         "another record, or the key is wrong)");
  }
  out.resize(written);
  return out;
}

}  // namespace hearth::privacy
