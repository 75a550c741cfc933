// Secure aggregation's arithmetic (Bonawitz et al. 2017, "Practical Secure Aggregation"): each
// client's update is encoded in fixed point modulo 2^48 and hidden under a self mask (from its
// own seed) plus one pairwise mask per other client of the round (from an X25519 key agreement);
// pairwise masks cancel in the sum. Seeds and secret keys are Shamir-shared (shamir.h) so that
// the survivors of a round let the coordinator remove the self masks of survivors and the
// pairwise masks of clients that dropped out, and nothing else. The transport lives in engine/.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace hearth::privacy {

// Updates and masks live in Z_{2^48}: int64 tensors with values in [0, 2^48), so a sum of up
// to 2^15 of them fits an int64 without overflow before it is reduced.
inline constexpr int kMaskBits = 48;
inline constexpr int64_t kMaskModulus = int64_t(1) << kMaskBits;

using Key32 = std::array<uint8_t, 32>;

// An X25519 key pair for one client and one round.
struct AgreementKeys {
  Key32 public_key{};
  Key32 secret_key{};
  static AgreementKeys generate();
  // The pair from a secret key alone (the coordinator, after rebuilding a dropped client's key).
  static AgreementKeys from_secret(const Key32& secret_key);
};

// The seed both clients of a pair derive from their key agreement, bound to the round's
// `context` (e.g. "round 3"); the same from either side. kAuthentication for a degenerate key.
Key32 pairwise_seed(const AgreementKeys& mine, const Key32& their_public_key, std::string_view context);

// A key for sealing messages between the two clients of a pair (derived from their seed).
Key32 pairwise_message_key(const Key32& seed);
// XChaCha20-Poly1305 with a random nonce; open() fails with kAuthentication when tampered.
std::string seal_message(const Key32& key, std::string_view plaintext, std::string_view associated);
std::string open_message(const Key32& key, std::string_view sealed, std::string_view associated);

// n uniform values in [0, 2^48) expanded from a seed (ChaCha20), as int64.
at::Tensor mask_stream(const Key32& seed, int64_t n);

// Fixed point: round(x * 2^frac_bits) mod 2^48, and back (values >= 2^47 are negative). Sums of
// encodings decode to sums of the rounded values exactly while |sum| < 2^(47 - frac_bits).
at::Tensor encode_fixed_point(const at::Tensor& values, int frac_bits);
at::Tensor decode_fixed_point(const at::Tensor& encoded, int frac_bits);
// (a + sign * b) mod 2^48 for tensors of [0, 2^48) values.
at::Tensor add_mod(const at::Tensor& a, const at::Tensor& b, int sign = 1);

// What client `self` uploads: encoded + mask(self_seed) + sum over other clients j of
// +mask(s_{self,j}) when self < j, -mask when self > j (mod 2^48).
at::Tensor mask_update(const at::Tensor& encoded, int64_t self, const Key32& self_seed,
                       const std::map<int64_t, Key32>& pairwise_seeds);

// What the coordinator removes from the sum of the survivors' uploads: their self masks and,
// for each dropped client d, the pairwise masks the survivors added for d (rebuilt from d's
// secret key and the survivors' public keys).
at::Tensor unmasking_term(int64_t n, const std::map<int64_t, Key32>& survivor_self_seeds,
                          const std::map<int64_t, Key32>& survivor_public_keys,
                          const std::map<int64_t, Key32>& dropped_secret_keys, std::string_view context);

}  // namespace hearth::privacy
