#include "privacy/secure_aggregation.h"

#include <sodium.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "privacy/secret_key.h"

namespace hearth::privacy {
namespace {

constexpr int64_t kLowBits = kMaskModulus - 1;

}  // namespace

AgreementKeys AgreementKeys::generate() {
  ensure_sodium();
  AgreementKeys k;
  randombytes_buf(k.secret_key.data(), k.secret_key.size());
  crypto_scalarmult_base(k.public_key.data(), k.secret_key.data());
  return k;
}

AgreementKeys AgreementKeys::from_secret(const Key32& secret_key) {
  ensure_sodium();
  AgreementKeys k;
  k.secret_key = secret_key;
  crypto_scalarmult_base(k.public_key.data(), k.secret_key.data());
  return k;
}

Key32 pairwise_seed(const AgreementKeys& mine, const Key32& their_public_key, std::string_view context) {
  ensure_sodium();
  Key32 shared{};
  require(crypto_scalarmult(shared.data(), mine.secret_key.data(), their_public_key.data()) == 0,
          ErrorCode::kAuthentication, "a peer's public key is degenerate; the round is aborted");
  // Hash the shared point with both public keys in a fixed order and the round's context, so
  // both sides get one seed and no two rounds or pairs share one.
  const bool mine_first = mine.public_key < their_public_key;
  const Key32& first = mine_first ? mine.public_key : their_public_key;
  const Key32& second = mine_first ? their_public_key : mine.public_key;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  crypto_generichash_update(&st, shared.data(), shared.size());
  crypto_generichash_update(&st, first.data(), first.size());
  crypto_generichash_update(&st, second.data(), second.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(context.data()), context.size());
  Key32 seed{};
  crypto_generichash_final(&st, seed.data(), seed.size());
  sodium_memzero(shared.data(), shared.size());
  return seed;
}

Key32 pairwise_message_key(const Key32& seed) {
  Key32 key{};
  static const char label[] = "hearth secagg message key";
  crypto_generichash(key.data(), key.size(), reinterpret_cast<const unsigned char*>(label), sizeof(label) - 1, seed.data(),
                     seed.size());
  return key;
}

std::string seal_message(const Key32& key, std::string_view plaintext, std::string_view associated) {
  ensure_sodium();
  std::string out(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &len,
                                             reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
                                             reinterpret_cast<const unsigned char*>(associated.data()), associated.size(),
                                             nullptr, nonce, key.data());
  return out;
}

std::string open_message(const Key32& key, std::string_view sealed, std::string_view associated) {
  ensure_sodium();
  const size_t overhead = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES;
  require(sealed.size() >= overhead, ErrorCode::kAuthentication, "a sealed share is truncated");
  std::string out(sealed.size() - overhead, '\0');
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  unsigned long long len = 0;
  const int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
      reinterpret_cast<unsigned char*>(out.data()), &len, nullptr, nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
      sealed.size() - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, reinterpret_cast<const unsigned char*>(associated.data()),
      associated.size(), nonce, key.data());
  require(rc == 0, ErrorCode::kAuthentication, "a sealed share does not open (tampered, or not meant for this client)");
  return out;
}

at::Tensor mask_stream(const Key32& seed, int64_t n) {
  ensure_sodium();
  at::Tensor out = at::empty({n}, at::kLong);
  randombytes_buf_deterministic(out.data_ptr<int64_t>(), size_t(n) * sizeof(int64_t), seed.data());
  return out.bitwise_and_(kLowBits);
}

at::Tensor encode_fixed_point(const at::Tensor& values, int frac_bits) {
  require(frac_bits >= 0 && frac_bits <= 40, ErrorCode::kInvalidArgument, "fixed point needs 0..40 fractional bits");
  const at::Tensor scaled = (values.to(at::kDouble) * std::ldexp(1.0, frac_bits)).round_();
  require(scaled.numel() == 0 || scaled.abs().max().item<double>() < std::ldexp(1.0, kMaskBits - 1), ErrorCode::kInvalidArgument,
          "an update is too large for the fixed-point range; clip it first");
  return scaled.to(at::kLong).bitwise_and_(kLowBits);  // two's complement keeps negatives right mod 2^48
}

at::Tensor decode_fixed_point(const at::Tensor& encoded, int frac_bits) {
  at::Tensor v = encoded.bitwise_and(kLowBits);
  v = at::where(v >= (kMaskModulus >> 1), v - kMaskModulus, v);
  return v.to(at::kDouble) / std::ldexp(1.0, frac_bits);
}

at::Tensor add_mod(const at::Tensor& a, const at::Tensor& b, int sign) {
  return (sign >= 0 ? a + b : a - b).bitwise_and_(kLowBits);
}

at::Tensor mask_update(const at::Tensor& encoded, int64_t self, const Key32& self_seed,
                       const std::map<int64_t, Key32>& pairwise_seeds) {
  const int64_t n = encoded.numel();
  at::Tensor y = add_mod(encoded, mask_stream(self_seed, n));
  for (const auto& [peer, seed] : pairwise_seeds) {
    if (peer == self) continue;
    y = add_mod(y, mask_stream(seed, n), self < peer ? +1 : -1);
  }
  return y;
}

at::Tensor unmasking_term(int64_t n, const std::map<int64_t, Key32>& survivor_self_seeds,
                          const std::map<int64_t, Key32>& survivor_public_keys,
                          const std::map<int64_t, Key32>& dropped_secret_keys, std::string_view context) {
  at::Tensor term = at::zeros({n}, at::kLong);
  for (const auto& [id, seed] : survivor_self_seeds) term = add_mod(term, mask_stream(seed, n));
  for (const auto& [dropped, secret] : dropped_secret_keys) {
    const AgreementKeys keys = AgreementKeys::from_secret(secret);
    for (const auto& [survivor, pk] : survivor_public_keys) {
      // Survivor i added +mask(s_id) when i < d and -mask(s_id) when i > d.
      term = add_mod(term, mask_stream(pairwise_seed(keys, pk, context), n), survivor < dropped ? +1 : -1);
    }
  }
  return term;
}

}  // namespace hearth::privacy
