#include "privacy/shamir.h"

#include <sodium.h>

#include <array>
#include <set>

#include "core/error.h"

namespace hearth::privacy {
namespace {

// GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, by log / exp tables of generator 3.
struct Field {
  std::array<uint8_t, 512> exp_table{};
  std::array<int, 256> log_table{};
  Field() {
    int v = 1;
    for (int i = 0; i < 255; ++i) {
      exp_table[i] = exp_table[i + 255] = uint8_t(v);
      log_table[v] = i;
      v ^= (v << 1) ^ ((v & 0x80) ? 0x11b : 0);  // v * 3
      v &= 0xff;
    }
  }
  uint8_t mul(uint8_t a, uint8_t b) const { return a == 0 || b == 0 ? 0 : exp_table[log_table[a] + log_table[b]]; }
  uint8_t div(uint8_t a, uint8_t b) const { return a == 0 ? 0 : exp_table[log_table[a] + 255 - log_table[b]]; }
};

const Field& field() {
  static const Field f;
  return f;
}

}  // namespace

std::vector<SecretShare> shamir_split(std::string_view secret, int n, int threshold) {
  require(threshold >= 1 && threshold <= n && n <= 255, ErrorCode::kInvalidArgument,
          "secret sharing needs 1 <= threshold <= shares <= 255, not threshold " + std::to_string(threshold) + " of " +
              std::to_string(n));
  const Field& f = field();
  std::vector<SecretShare> shares(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    shares[i].x = uint8_t(i + 1);
    shares[i].y.resize(secret.size());
  }
  std::vector<uint8_t> coeff(static_cast<size_t>(threshold));
  for (size_t b = 0; b < secret.size(); ++b) {
    // p(x) = secret[b] + c1 x + ... + c_{t-1} x^{t-1}, evaluated by Horner's rule at x = 1..n.
    coeff[0] = uint8_t(secret[b]);
    if (threshold > 1) randombytes_buf(coeff.data() + 1, coeff.size() - 1);
    for (SecretShare& s : shares) {
      uint8_t y = 0;
      for (int c = threshold - 1; c >= 0; --c) y = uint8_t(f.mul(y, s.x) ^ coeff[c]);
      s.y[b] = char(y);
    }
  }
  sodium_memzero(coeff.data(), coeff.size());
  return shares;
}

std::string shamir_combine(const std::vector<SecretShare>& shares, int threshold) {
  require(threshold >= 1 && int(shares.size()) >= threshold, ErrorCode::kInvalidArgument,
          "rebuilding a shared secret needs " + std::to_string(threshold) + " shares, only " +
              std::to_string(shares.size()) + " were given");
  const Field& f = field();
  std::set<uint8_t> xs;
  for (int i = 0; i < threshold; ++i) {
    require(shares[i].x != 0 && xs.insert(shares[i].x).second, ErrorCode::kInvalidArgument,
            "secret shares must have distinct, non-zero indices");
    require(shares[i].y.size() == shares[0].y.size(), ErrorCode::kInvalidArgument, "secret shares differ in length");
  }
  // Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is xor in GF(2^8).
  std::vector<uint8_t> basis(static_cast<size_t>(threshold));
  for (int i = 0; i < threshold; ++i) {
    uint8_t l = 1;
    for (int j = 0; j < threshold; ++j) {
      if (j != i) l = f.mul(l, f.div(shares[j].x, uint8_t(shares[j].x ^ shares[i].x)));
    }
    basis[i] = l;
  }
  std::string secret(shares[0].y.size(), '\0');
  for (size_t b = 0; b < secret.size(); ++b) {
    uint8_t v = 0;
    for (int i = 0; i < threshold; ++i) v ^= f.mul(basis[i], uint8_t(shares[i].y[b]));
    secret[b] = char(v);
  }
  return secret;
}

}  // namespace hearth::privacy
