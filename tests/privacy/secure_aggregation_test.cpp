// Secure aggregation's arithmetic on fresh random inputs: Shamir sharing rebuilds from any
// threshold-sized subset; pairwise seeds agree; the sum of masked uploads minus the masks is
// bitwise the sum of the encodings, also when clients drop out after masking (their masks are
// rebuilt from the survivors' shares); and one client's masked upload is indistinguishable from
// uniform noise while the same statistics catch its unmasked encoding.
#include <gtest/gtest.h>
#include <sodium.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <random>

#include "core/error.h"
#include "core/rng.h"
#include "privacy/secure_aggregation.h"
#include "privacy/shamir.h"

using namespace hearth;
using namespace hearth::privacy;

namespace {

uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("HEARTH_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

std::string key_string(const Key32& k) { return std::string(reinterpret_cast<const char*>(k.data()), k.size()); }

Key32 key_of(const std::string& s) {
  Key32 k{};
  std::copy(s.begin(), s.end(), k.begin());
  return k;
}

// Chi-square statistic of the top 4 bits of [0, 2^48) values over 16 equal bins.
double top_bits_chi_square(const at::Tensor& values) {
  const at::Tensor bins = values.bitwise_right_shift(kMaskBits - 4);
  const at::Tensor counts = at::bincount(bins, {}, 16).to(at::kDouble);
  const double expected = double(values.numel()) / 16;
  return ((counts - expected).pow(2) / expected).sum().item<double>();
}

// Pearson correlation of two tensors (as doubles).
double correlation(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble) - a.to(at::kDouble).mean(), y = b.to(at::kDouble) - b.to(at::kDouble).mean();
  return (x * y).sum().item<double>() / std::sqrt((x * x).sum().item<double>() * (y * y).sum().item<double>());
}

struct Cohort {
  std::vector<AgreementKeys> keys;
  std::vector<Key32> self_seeds;
  std::vector<at::Tensor> encoded, masked;
};

// k clients with random updates in [-1, 1], masked against each other in round `context`.
Cohort masked_cohort(int k, int64_t n, at::Generator& gen, const std::string& context) {
  Cohort c;
  for (int i = 0; i < k; ++i) {
    c.keys.push_back(AgreementKeys::generate());
    Key32 s{};
    randombytes_buf(s.data(), s.size());
    c.self_seeds.push_back(s);
  }
  for (int i = 0; i < k; ++i) {
    std::map<int64_t, Key32> pair;
    for (int j = 0; j < k; ++j)
      if (j != i) pair[j] = pairwise_seed(c.keys[i], c.keys[j].public_key, context);
    c.encoded.push_back(encode_fixed_point(at::rand({n}, gen, at::kDouble) * 2 - 1, 24));
    c.masked.push_back(mask_update(c.encoded[i], i, c.self_seeds[i], pair));
  }
  return c;
}

at::Tensor sum_mod(const std::vector<at::Tensor>& ts, const std::vector<int>& which) {
  at::Tensor s = at::zeros_like(ts[0]);
  for (int i : which) s = add_mod(s, ts[i]);
  return s;
}

}  // namespace

TEST(Shamir, AnyThresholdSubsetRebuildsTheSecret) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 2 + int(rng() % 9), t = 1 + int(rng() % n);
    std::string secret(1 + rng() % 64, '\0');
    for (char& ch : secret) ch = char(rng());
    std::vector<SecretShare> shares = shamir_split(secret, n, t);
    ASSERT_EQ(shares.size(), size_t(n));
    std::shuffle(shares.begin(), shares.end(), rng);
    EXPECT_EQ(shamir_combine(shares, t), secret) << "n " << n << " t " << t;
    if (t >= 2) {
      // t-1 shares treated as if they sufficed give another value (all 32+ bytes equal by chance: 2^-8 per byte).
      std::vector<SecretShare> fewer(shares.begin(), shares.begin() + (t - 1));
      if (secret.size() >= 16) {
        EXPECT_NE(shamir_combine(fewer, t - 1), secret);
      }
    }
  }
}

TEST(Shamir, BadArgumentsAreErrors) {
  EXPECT_THROW(shamir_split("abc", 3, 4), Error);
  EXPECT_THROW(shamir_split("abc", 300, 2), Error);
  std::vector<SecretShare> shares = shamir_split("abcdef", 4, 3);
  shares.resize(2);
  EXPECT_THROW(shamir_combine(shares, 3), Error);
  shares = shamir_split("abcdef", 4, 2);
  shares[1].x = shares[0].x;
  EXPECT_THROW(shamir_combine(shares, 2), Error);
}

TEST(SecureAggregation, PairwiseSeedsAgreeAndDependOnTheRound) {
  const AgreementKeys a = AgreementKeys::generate(), b = AgreementKeys::generate(), c = AgreementKeys::generate();
  EXPECT_EQ(pairwise_seed(a, b.public_key, "round 1"), pairwise_seed(b, a.public_key, "round 1"));
  EXPECT_NE(pairwise_seed(a, b.public_key, "round 1"), pairwise_seed(a, b.public_key, "round 2"));
  EXPECT_NE(pairwise_seed(a, b.public_key, "round 1"), pairwise_seed(a, c.public_key, "round 1"));
  EXPECT_EQ(AgreementKeys::from_secret(a.secret_key).public_key, a.public_key);
  const Key32 k = pairwise_message_key(pairwise_seed(a, b.public_key, "r"));
  std::string sealed = seal_message(k, "share", "1->2");
  EXPECT_EQ(open_message(k, sealed, "1->2"), "share");
  EXPECT_THROW(open_message(k, sealed, "2->1"), Error);  // bound to its direction
  sealed[30] ^= 1;
  EXPECT_THROW(open_message(k, sealed, "1->2"), Error);
}

TEST(SecureAggregation, FixedPointSumsAreExact) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  at::Generator gen = make_generator(seed);
  const at::Tensor x = at::randn({1000}, gen, at::kDouble) * 3, y = at::randn({1000}, gen, at::kDouble) * 3;
  const at::Tensor sum = decode_fixed_point(add_mod(encode_fixed_point(x, 24), encode_fixed_point(y, 24)), 24);
  // The reference: each value rounded to a multiple of 2^-24, then added in double (exact at these magnitudes).
  const at::Tensor ref = (x * 16777216.0).round() / 16777216.0 + (y * 16777216.0).round() / 16777216.0;
  EXPECT_TRUE(at::equal(sum, ref));
  EXPECT_THROW(encode_fixed_point(at::full({1}, 1e9, at::kDouble), 24), Error);  // past 2^23: clip first
}

TEST(SecureAggregation, MasksCancelAndTheSumIsExact) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  at::Generator gen = make_generator(seed);
  const int k = 5;
  const int64_t n = 4096;
  Cohort c = masked_cohort(k, n, gen, "round 7");
  std::vector<int> all{0, 1, 2, 3, 4};
  std::map<int64_t, Key32> seeds, pks;
  for (int i : all) {
    seeds[i] = c.self_seeds[i];
    pks[i] = c.keys[i].public_key;
  }
  const at::Tensor unmasked = add_mod(sum_mod(c.masked, all), unmasking_term(n, seeds, pks, {}, "round 7"), -1);
  EXPECT_TRUE(at::equal(unmasked, sum_mod(c.encoded, all)));
}

TEST(SecureAggregation, DroppedClientsMasksAreRebuiltFromTheSurvivorsShares) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  at::Generator gen = make_generator(seed);
  const int k = 5, t = 3;
  const int64_t n = 2048;
  Cohort c = masked_cohort(k, n, gen, "round 2");
  // Every client shares its self seed and secret key with the cohort (share j goes to client j).
  std::vector<std::vector<SecretShare>> seed_shares, key_shares;
  for (int i = 0; i < k; ++i) {
    seed_shares.push_back(shamir_split(key_string(c.self_seeds[i]), k, t));
    key_shares.push_back(shamir_split(key_string(c.keys[i].secret_key), k, t));
  }
  // Clients 1 and 3 drop out after masking; the survivors reveal their shares.
  const std::vector<int> survivors{0, 2, 4}, dropped{1, 3};
  std::map<int64_t, Key32> seeds, pks, dropped_keys;
  for (int s : survivors) {
    std::vector<SecretShare> got;
    for (int holder : survivors) got.push_back(seed_shares[s][holder]);
    seeds[s] = key_of(shamir_combine(got, t));
    pks[s] = c.keys[s].public_key;
  }
  for (int d : dropped) {
    std::vector<SecretShare> got;
    for (int holder : survivors) got.push_back(key_shares[d][holder]);
    dropped_keys[d] = key_of(shamir_combine(got, t));
  }
  const at::Tensor unmasked = add_mod(sum_mod(c.masked, survivors), unmasking_term(n, seeds, pks, dropped_keys, "round 2"), -1);
  EXPECT_TRUE(at::equal(unmasked, sum_mod(c.encoded, survivors)));
  // Without the dropped clients' masks removed, the sum is garbage.
  const at::Tensor partial = add_mod(sum_mod(c.masked, survivors), unmasking_term(n, seeds, pks, {}, "round 2"), -1);
  EXPECT_FALSE(at::equal(partial, sum_mod(c.encoded, survivors)));
}

// What the coordinator could see of one client (its masked upload) passes a uniformity test at
// the 1e-6 level and does not correlate with the update, while the same tests flag the
// unmasked encoding; so the test has the power to see structure, and the mask leaves none.
TEST(SecureAggregation, OneMaskedUploadIsIndistinguishableFromNoise) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  at::Generator gen = make_generator(seed);
  const int64_t n = 1 << 16;
  Cohort c = masked_cohort(3, n, gen, "round 1");
  // chi-square with 15 degrees of freedom: P(X > 52.6) = 1e-6 for uniform data.
  const double critical = 52.6;
  for (int i = 0; i < 3; ++i) {
    EXPECT_LT(top_bits_chi_square(c.masked[i]), critical) << "client " << i;
    // |r| of independent samples has std 1/sqrt(n) ~ 0.004; 6 sigma.
    EXPECT_LT(std::abs(correlation(c.masked[i], c.encoded[i])), 6.0 / std::sqrt(double(n))) << "client " << i;
    EXPECT_GT(top_bits_chi_square(c.encoded[i]), 1000.0) << "the unmasked encoding is far from uniform";
  }
  // Two clients' uploads do not correlate with each other either (their masks are independent).
  EXPECT_LT(std::abs(correlation(c.masked[0], c.masked[1])), 6.0 / std::sqrt(double(n)));
}
