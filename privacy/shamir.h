// Shamir's secret sharing over GF(2^8), byte by byte: a secret of any length becomes n shares,
// any `threshold` of which rebuild it while fewer reveal nothing about it. Secure aggregation
// (secure_aggregation.h) shares each client's mask seed and key this way, so the survivors of a
// round can undo the masks of clients that dropped out.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::privacy {

struct SecretShare {
  uint8_t x = 0;   // 1..255: which share
  std::string y;   // as long as the secret
};

// n shares (x = 1..n) of `secret`, any `threshold` of which rebuild it; random coefficients come
// from the OS's random source. kInvalidArgument unless 1 <= threshold <= n <= 255.
std::vector<SecretShare> shamir_split(std::string_view secret, int n, int threshold);

// The secret from at least `threshold` distinct shares of it (the first `threshold` are used).
// kInvalidArgument for too few, duplicate or unequal-length shares. Fewer than the threshold
// used to split give a wrong value that cannot be told apart from the right one.
std::string shamir_combine(const std::vector<SecretShare>& shares, int threshold);

}  // namespace hearth::privacy
