// The RDP accountant against published figures, and DP-SGD clipping and noise against a
// plain double-precision reference.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "privacy/dp_sgd.h"
#include "privacy/rdp_accountant.h"

using namespace hearth;
using namespace hearth::privacy;

namespace {

int64_t steps_for(double n, double batch, double epochs) { return static_cast<int64_t>(std::ceil(epochs * n / batch)); }

}  // namespace

// TF Privacy's MNIST DP-SGD tutorial (tutorials/README.md): N = 60000, batch 256, δ = 1e-5,
// reported with the classic RDP → (ε, δ) conversion.
TEST(RdpAccountant, MatchesTfPrivacyTutorialTable) {
  struct Row { double sigma, epochs, published; };
  const Row rows[] = {{1.1, 60, 3.01}, {1.3, 15, 1.19}, {0.7, 45, 7.10}, {1.1, 1, 1.03}, {1.1, 2, 1.11}};
  for (const Row& r : rows) {
    double eps = dp_sgd_epsilon(256.0 / 60000, r.sigma, steps_for(60000, 256, r.epochs), 1e-5,
                                RdpConversion::kClassic).epsilon;
    EXPECT_NEAR(eps / r.published, 1.0, 0.02) << "sigma " << r.sigma << " epochs " << r.epochs << " eps " << eps;
  }
}

// Abadi et al. 2016, §3.1: q = 0.01, σ = 4, δ = 1e-5, T = 10000 steps gives ε ≈ 1.26 with the
// moments accountant (which RDP at integer orders reproduces).
TEST(RdpAccountant, MatchesAbadiMomentsAccountantExample) {
  std::vector<double> integer_orders;
  for (int a = 2; a <= 32; ++a) integer_orders.push_back(a);
  double eps = dp_sgd_epsilon(0.01, 4.0, 10000, 1e-5, RdpConversion::kClassic, integer_orders).epsilon;
  EXPECT_NEAR(eps / 1.26, 1.0, 0.02) << eps;
}

TEST(RdpAccountant, ImprovedConversionIsTighterAndMonotone) {
  double q = 256.0 / 60000;
  int64_t steps = steps_for(60000, 256, 60);
  double classic = dp_sgd_epsilon(q, 1.1, steps, 1e-5, RdpConversion::kClassic).epsilon;
  double improved = dp_sgd_epsilon(q, 1.1, steps, 1e-5, RdpConversion::kImproved).epsilon;
  EXPECT_LT(improved, classic);
  EXPECT_GT(improved, 0.85 * classic);
  EXPECT_LT(dp_sgd_epsilon(q, 1.5, steps, 1e-5).epsilon, improved);      // more noise, less ε
  EXPECT_LT(dp_sgd_epsilon(q, 1.1, steps / 2, 1e-5).epsilon, improved);  // fewer steps, less ε
  EXPECT_EQ(dp_sgd_epsilon(q, 1.1, 0, 1e-5).epsilon, 0.0);
}

// Without sampling the mechanism is the plain Gaussian: RDP = α / (2σ²) exactly.
TEST(RdpAccountant, FullBatchIsTheGaussianMechanism) {
  for (double alpha : {1.5, 2.0, 7.25, 32.0}) EXPECT_DOUBLE_EQ(sampled_gaussian_rdp(1.0, 2.0, alpha), alpha / 8.0);
}

// Fractional orders sit between their integer neighbours (RDP grows with the order).
TEST(RdpAccountant, FractionalOrdersInterpolateIntegerOnes) {
  double q = 0.01, sigma = 1.1;
  double r2 = sampled_gaussian_rdp(q, sigma, 2), r25 = sampled_gaussian_rdp(q, sigma, 2.5),
         r3 = sampled_gaussian_rdp(q, sigma, 3);
  EXPECT_LT(r2, r25);
  EXPECT_LT(r25, r3);
  // Near an integer the fractional series agrees with the exact binomial sum.
  EXPECT_NEAR(sampled_gaussian_rdp(q, sigma, 4.0000001) / sampled_gaussian_rdp(q, sigma, 4), 1.0, 1e-5);
}

TEST(RdpAccountant, NoiseForEpsilonInvertsEpsilon) {
  double q = 256.0 / 60000;
  int64_t steps = steps_for(60000, 256, 60);
  double sigma = noise_for_epsilon(3.01, q, steps, 1e-5, RdpConversion::kClassic);
  EXPECT_NEAR(sigma, 1.1, 0.03);
  EXPECT_LE(dp_sgd_epsilon(q, sigma, steps, 1e-5, RdpConversion::kClassic).epsilon, 3.01);
  RdpAccountant acc(q, 1.1);
  acc.step(steps);
  EXPECT_EQ(acc.steps(), steps);
  EXPECT_NEAR(acc.spent(1e-5, RdpConversion::kClassic).epsilon, 3.01, 0.06);
  EXPECT_THROW(noise_for_epsilon(-1, q, steps, 1e-5), Error);
}

TEST(DpSgd, ClippingBoundsEveryExampleAndMatchesReference) {
  at::Generator gen = make_generator(7);
  const int64_t batch = 16;
  PerExampleGrads grads = {at::randn({batch, 8, 4}, gen) * 3, at::randn({batch, 5}, gen), at::randn({batch, 2, 2}, gen) * 0.01};
  grads[0][3].zero_();  // an all-zero example stays zero
  grads[1][3].zero_();
  grads[2][3].zero_();
  PerExampleGrads original;
  for (auto& g : grads) original.push_back(g.clone());
  const double C = 1.5;
  clip_per_example_(grads, C);
  at::Tensor norms = per_example_norms(grads);
  for (int64_t b = 0; b < batch; ++b) {
    // Reference in double: the norm over all parameters of example b, then min(1, C/norm).
    double sq = 0;
    for (auto& g : original) sq += g[b].to(at::kDouble).pow(2).sum().item<double>();
    double ref_norm = std::sqrt(sq);
    double factor = std::min(1.0, C / (ref_norm + 1e-6));
    EXPECT_LE(norms[b].item<double>(), C * (1 + 1e-5)) << b;
    EXPECT_NEAR(norms[b].item<double>(), ref_norm * factor, 1e-4 * std::max(1.0, ref_norm)) << b;
    for (size_t p = 0; p < grads.size(); ++p) {
      EXPECT_TRUE(at::allclose(grads[p][b].to(at::kDouble), original[p][b].to(at::kDouble) * factor, 1e-5, 1e-7));
    }
  }
  EXPECT_EQ(norms[3].item<double>(), 0.0);
}

TEST(DpSgd, NoiseHasTheRightScaleAndIsSeeded) {
  const int64_t batch = 4;
  PerExampleGrads zeros = {at::zeros({batch, 200, 100})};
  DpSgdConfig config{2.0, 1.5};
  at::Generator g1 = make_generator(11), g2 = make_generator(11);
  auto a = privatize_gradients(zeros, config, batch, g1);
  auto b = privatize_gradients(zeros, config, batch, g2);
  EXPECT_TRUE(at::equal(a[0], b[0]));
  // Zero gradients: the result is pure noise of std σC / batch.
  double sd = a[0].std().item<double>();
  EXPECT_NEAR(sd, 1.5 * 2.0 / batch, 0.02 * 1.5 * 2.0 / batch);
  // Without noise, the result is the mean of the clipped gradients.
  at::Generator g3 = make_generator(1);
  PerExampleGrads big = {at::full({batch, 3}, 10.0)};
  auto clean = privatize_gradients(big, DpSgdConfig{1.0, 0.0}, batch, g3);
  double expect = 1.0 / std::sqrt(3.0) * (1.0 - 1e-6 / std::sqrt(300.0));
  EXPECT_NEAR(clean[0][0].item<double>(), expect, 1e-5);
}

TEST(DpSgd, RejectsMismatchedBatches) {
  PerExampleGrads bad = {at::zeros({4, 2}), at::zeros({3, 2})};
  EXPECT_THROW(per_example_norms(bad), Error);
  PerExampleGrads ok = {at::zeros({4, 2})};
  EXPECT_THROW(clip_per_example_(ok, 0.0), Error);
}

// Poisson sampling can draw no example at all: the step is then pure noise of std σC / B.
TEST(DpSgd, AnEmptyDrawGivesPureNoise) {
  PerExampleGrads none = {at::zeros({0, 300, 100}), at::zeros({0, 50})};
  EXPECT_EQ(per_example_norms(none).numel(), 0);
  at::Generator gen = make_generator(5);
  auto out = privatize_gradients(none, DpSgdConfig{1.0, 2.0}, 8, gen);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].sizes(), at::IntArrayRef({300, 100}));
  EXPECT_NEAR(out[0].std().item<double>(), 2.0 / 8, 0.02 * 2.0 / 8);
}
