#include "privacy/aead.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace hearth::privacy {

namespace {
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kNonce + kTag == kSealOverhead, "seal overhead must match libsodium");

// XChaCha20-Poly1305-IETF exactly as libsodium defines it, so files sealed by either open with
// the other: HChaCha20 turns the key and the nonce's first 16 bytes into a subkey, then the IETF
// ChaCha20-Poly1305 AEAD runs under that subkey with the nonce 0^4 || nonce[16..24]. libsodium
// derives the subkey; OpenSSL runs the AEAD, ~3x faster than libsodium's here (its Poly1305 is
// vectorized), which is most of the time of loading a sealed adapter.
struct CipherContext {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherContext() { EVP_CIPHER_CTX_free(ctx); }
};

// Encrypts `in` into `out` and writes the tag to `tag`, or decrypts and checks `tag`; false on a
// failed check. `out` may equal `in`.
bool run_ietf_aead(bool encrypt, const SecretKey& key, const unsigned char* nonce, const std::string& ad,
                   const unsigned char* in, size_t length, unsigned char* out, unsigned char* tag) {
  unsigned char subkey[crypto_core_hchacha20_OUTPUTBYTES];
  crypto_core_hchacha20(subkey, nonce, key.data(), nullptr);
  unsigned char ietf_nonce[12] = {0, 0, 0, 0};
  std::memcpy(ietf_nonce + 4, nonce + crypto_core_hchacha20_INPUTBYTES, 8);
  CipherContext c;
  int n = 0;
  bool ok = c.ctx != nullptr &&
            EVP_CipherInit_ex(c.ctx, EVP_chacha20_poly1305(), nullptr, subkey, ietf_nonce, encrypt ? 1 : 0) == 1;
  sodium_memzero(subkey, sizeof subkey);
  if (ok && !encrypt) ok = EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_AEAD_SET_TAG, int(kTag), tag) == 1;
  if (ok && !ad.empty())
    ok = EVP_CipherUpdate(c.ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(ad.data()), int(ad.size())) == 1;
  // OpenSSL takes int lengths: larger inputs go through in slices.
  constexpr size_t kSlice = size_t{1} << 30;
  for (size_t done = 0; ok && done < length; done += kSlice) {
    const int slice = int(std::min(kSlice, length - done));
    ok = EVP_CipherUpdate(c.ctx, out + done, &n, in + done, slice) == 1 && n == slice;
  }
  ok = ok && EVP_CipherFinal_ex(c.ctx, out + length, &n) == 1;
  if (ok && encrypt) ok = EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_AEAD_GET_TAG, int(kTag), tag) == 1;
  return ok;
}
}  // namespace

std::string RecordRef::associated_data() const {
  return "user:" + std::to_string(user_id) + "|kind:" + kind + "|record:" + std::to_string(record_id);
}

std::string RecordRef::describe() const {
  return kind + " record " + std::to_string(record_id) + " of user " + std::to_string(user_id);
}

std::string seal(const SecretKey& key, std::string_view plaintext, const RecordRef& where) {
  ensure_sodium();
  std::string out(kNonce + plaintext.size() + kTag, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, kNonce);
  const bool ok = run_ietf_aead(/*encrypt=*/true, key, nonce, where.associated_data(),
                                reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                                nonce + kNonce, nonce + kNonce + plaintext.size());
  require(ok, ErrorCode::kInternal, "sealing " + where.describe() + " failed (OpenSSL ChaCha20-Poly1305)");
  return out;
}

std::string open(const SecretKey& key, std::string_view sealed, const RecordRef& where) {
  ensure_sodium();
  require(sealed.size() >= kSealOverhead, ErrorCode::kAuthentication,
          "cannot open " + where.describe() + ": ciphertext is truncated (" + std::to_string(sealed.size()) +
              " bytes)");
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t length = sealed.size() - kSealOverhead;
  std::string out(length, '\0');
  const bool ok = run_ietf_aead(/*encrypt=*/false, key, nonce, where.associated_data(), nonce + kNonce, length,
                                reinterpret_cast<unsigned char*>(out.data()),
                                const_cast<unsigned char*>(nonce + kNonce + length));
  if (!ok) {
    wipe(out);
    fail(ErrorCode::kAuthentication, "cannot open " + where.describe() +
                                         ": authentication failed (the ciphertext was altered, moved from "
                                         "another record, or the key is wrong)");
  }
  return out;
}

}  // namespace hearth::privacy
