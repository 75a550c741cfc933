// The vocabulary-tiled output loss against a double-precision full-logits reference: value,
// d hidden, and (for full fine-tuning) d head weight; dense and quantized heads.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "trainer/chunked_loss.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {

struct Case {
  at::Tensor hidden, targets, weights;
};

Case random_case(const Decoder& d, int64_t n) {
  at::Generator gen = make_generator(11);
  Case c;
  c.hidden = at::randn({n, d.config().hidden_size}, gen, at::kFloat);
  c.targets = at::randint(0, d.config().vocab_size, {n}, gen, at::kLong);
  c.weights = at::randint(0, 2, {n}, gen, at::kLong).to(at::kFloat);
  return c;
}

// loss and d hidden in double precision from the full logits.
std::pair<double, at::Tensor> double_reference(const Decoder& d, const Case& c) {
  at::Tensor w = d.lm_head().weight_fp32().to(at::kDouble);
  at::Tensor h = c.hidden.to(at::kDouble).detach().requires_grad_(true);
  at::Tensor logp = at::log_softmax(at::matmul(h, w.t()), 1);
  at::Tensor loss = -(logp.gather(1, c.targets.unsqueeze(1)).squeeze(1) * c.weights.to(at::kDouble)).sum();
  loss.backward();
  return {loss.item<double>(), h.grad()};
}

void expect_matches_reference(const Decoder& d, const Case& c) {
  auto [ref_loss, ref_grad] = double_reference(d, c);
  // Tiles of one row, uneven tiles with a remainder, the default, and one tile for all.
  for (int64_t tile : {1, 5, 37, 0, 100000}) {
    at::Tensor h = c.hidden.clone().requires_grad_(true);
    at::Tensor loss = trainer::chunked_cross_entropy(d, h, c.targets, c.weights, tile);
    EXPECT_NEAR(loss.item<double>(), ref_loss, 1e-4 * std::abs(ref_loss)) << "tile " << tile;
    (loss * 0.5).backward();
    EXPECT_TRUE(at::allclose(h.grad().to(at::kDouble), ref_grad * 0.5, 1e-4, 1e-6)) << "tile " << tile;
    // Positions with weight 0 get no gradient at all.
    EXPECT_EQ(h.grad().index_select(0, c.weights.eq(0).nonzero().squeeze(1)).abs().max().item<float>(), 0.0f);
  }
}

TEST(ChunkedLoss, ValueAndHiddenGradientMatchFullReference) {
  LoadedModel m = testing::load_stories();
  Case c = random_case(*m.decoder, 37);
  expect_matches_reference(*m.decoder, c);
  auto [ref_loss, ref_grad] = double_reference(*m.decoder, c);
  // The float full-logits path agrees too.
  EXPECT_NEAR(trainer::full_cross_entropy(*m.decoder, c.hidden, c.targets, c.weights).item<double>(), ref_loss,
              1e-4 * std::abs(ref_loss));
}

TEST(ChunkedLoss, QuantizedHeadMatchesItsDequantizedReference) {
  LoadedModel m = testing::load_stories(/*nf4=*/true);
  ASSERT_TRUE(m.decoder->lm_head().is_quantized());
  expect_matches_reference(*m.decoder, random_case(*m.decoder, 29));
}

TEST(ChunkedLoss, AllWeightsZeroGivesZeroLossAndGradient) {
  LoadedModel m = testing::load_stories();
  Case c = random_case(*m.decoder, 6);
  at::Tensor h = c.hidden.clone().requires_grad_(true);
  at::Tensor loss = trainer::chunked_cross_entropy(*m.decoder, h, c.targets, at::zeros({6}));
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_EQ(h.grad().abs().max().item<float>(), 0.0f);
}

TEST(ChunkedLoss, HeadWeightGradientMatchesFullLogits) {
  LoadedModel m = testing::load_stories();
  Case c = random_case(*m.decoder, 23);
  at::Tensor w = m.decoder->lm_head().dense_weight();
  w.set_data(w.detach().clone());
  w.set_requires_grad(true);
  trainer::full_cross_entropy(*m.decoder, c.hidden, c.targets, c.weights).backward();
  at::Tensor full_grad = w.grad().clone();
  w.mutable_grad() = at::Tensor();
  at::Tensor h = c.hidden.clone().requires_grad_(true);
  trainer::chunked_cross_entropy(*m.decoder, h, c.targets, c.weights, 4).backward();
  EXPECT_TRUE(at::allclose(w.grad(), full_grad, 1e-4, 1e-6));
}

TEST(ChunkedLoss, RejectsMismatchedShapes) {
  LoadedModel m = testing::load_stories();
  at::Tensor h = at::zeros({4, m.decoder->config().hidden_size});
  EXPECT_THROW(trainer::chunked_cross_entropy(*m.decoder, h, at::zeros({3}, at::kLong), at::ones({4})), Error);
}

}  // namespace
}  // namespace hearth
