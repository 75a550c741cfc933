// An adapter as its products s·B·A and back, against a double-precision reference: products
// are B·A·s per module; re-factorizing a rank-r update reproduces it; a higher-rank update
// keeps exactly its best rank-r part (Eckart–Young); a zero update gives orthonormal A rows and
// zero B, so the adapter can still learn.
#include <gtest/gtest.h>

#include <random>

#include "adapter_fixtures.h"
#include "adapters/low_rank_product.h"

namespace hearth {
namespace {

using testing::relative_error;

uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("HEARTH_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

AdapterConfig lora(int64_t rank) {
  AdapterConfig c;
  c.rank = rank;
  c.alpha = 2.0 * rank;
  c.targets = {"q_proj", "down_proj"};
  c.seed = 3;
  return c;
}

// The reference: every module's s·B·A in double, concatenated.
at::Tensor reference_products(const Adapter& a) {
  std::vector<at::Tensor> blocks;
  for (const AdapterModule& m : a.modules())
    blocks.push_back((m.impl->lora_B().to(at::kDouble).mm(m.impl->lora_A().to(at::kDouble)) * a.config().scale()).reshape({-1}));
  return at::cat(blocks);
}

TEST(LowRankProduct, ProductsMatchTheReferenceAndRoundTrip) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  LoadedModel m = testing::load_tiny(false);
  auto a = Adapter::create(*m.decoder, lora(4));
  testing::randomize_adapter(*a, seed);
  const at::Tensor p = lora_products(*a);
  // fp32 products of O(1) sums over r = 4 terms: a few ulps.
  EXPECT_LT(relative_error(p, reference_products(*a)), 1e-6);
  // A rank-4 update comes back exactly (up to the SVD's float rounding) and loses nothing.
  auto b = Adapter::create(*m.decoder, lora(4));
  const double kept = set_lora_from_products(*b, p, seed);
  EXPECT_NEAR(kept, 1.0, 1e-9);
  EXPECT_LT(relative_error(lora_products(*b), reference_products(*a)), 1e-5);
}

TEST(LowRankProduct, HigherRankUpdatesKeepTheirBestRankRPart) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed));
  LoadedModel m = testing::load_tiny(false);
  auto a = Adapter::create(*m.decoder, lora(2));
  at::Generator gen = make_generator(seed);
  const at::Tensor target = at::randn({lora_products_size(*a)}, gen) * 0.01;
  const double kept = set_lora_from_products(*a, target, seed);
  const at::Tensor got = reference_products(*a);
  double energy = 0, kept_ref = 0;
  int64_t offset = 0;
  for (const AdapterModule& mod : a->modules()) {
    const int64_t out = mod.impl->out_features(), in = mod.impl->in_features();
    const at::Tensor w = target.narrow(0, offset, out * in).view({out, in}).to(at::kDouble);
    auto [u, s, vh] = at::linalg_svd(w, false);
    const at::Tensor best = u.narrow(1, 0, 2).mm(at::diag(s.narrow(0, 0, 2))).mm(vh.narrow(0, 0, 2));
    EXPECT_LT(relative_error(got.narrow(0, offset, out * in).view({out, in}), best), 1e-5) << mod.name;
    energy += s.pow(2).sum().item<double>();
    kept_ref += s.narrow(0, 0, 2).pow(2).sum().item<double>();
    offset += out * in;
  }
  EXPECT_NEAR(kept, kept_ref / energy, 1e-6);
}

TEST(LowRankProduct, AZeroUpdateLeavesATrainableAdapter) {
  LoadedModel m = testing::load_tiny(false);
  auto a = Adapter::create(*m.decoder, lora(4));
  set_lora_from_products(*a, at::zeros({lora_products_size(*a)}), 5);
  for (const AdapterModule& mod : a->modules()) {
    EXPECT_EQ(mod.impl->lora_B().abs().max().item<float>(), 0.0f);
    // Rows orthonormal up to the 1/sqrt(3) scale: A Aᵀ = I / 3.
    const at::Tensor gram = mod.impl->lora_A().to(at::kDouble).mm(mod.impl->lora_A().to(at::kDouble).t());
    EXPECT_LT((gram - at::eye(4, at::kDouble) / 3.0).abs().max().item<double>(), 1e-6);
  }
  EXPECT_THROW(set_lora_from_products(*a, at::zeros({7}), 5), Error);
}

}  // namespace
}  // namespace hearth
