// LoRA and DoRA layers over a frozen nf4 base against double-precision references: outputs and
// the gradients of A, B, the magnitude and the input; the DoRA row norms without dequantizing.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"
#include "adapters/dora_layer.h"
#include "adapters/lora_layer.h"
#include "inference/quant/quant.h"

namespace hearth {
namespace {

using testing::relative_error;

constexpr int64_t kIn = 136, kOut = 40, kRank = 6;  // kIn not a block multiple: padded last block
constexpr double kScale = 16.0 / kRank;

struct Case {
  Linear base;
  at::Tensor weight64;  // the dequantized base, double
  at::Tensor bias;
  at::Tensor a, b, m;
  at::Tensor x, grad_out;
};

Case make_case(uint64_t seed, bool quantized) {
  at::Generator gen = make_generator(seed);
  Case c;
  at::Tensor w = at::randn({kOut, kIn}, gen, at::kFloat) * 0.1;
  c.bias = at::randn({kOut}, gen, at::kFloat) * 0.1;
  if (quantized) {
    auto q = std::make_shared<QuantizedMatrix>(quantize_matrix(w, QuantFormat::kNF4));
    c.weight64 = dequantize_matrix(*q).to(at::kDouble);
    c.base = Linear::quantized(q, c.bias);
  } else {
    c.weight64 = w.to(at::kDouble);
    c.base = Linear::dense(w, c.bias);
  }
  c.a = (at::rand({kRank, kIn}, gen, at::kFloat) - 0.5) * 0.2;
  c.b = at::randn({kOut, kRank}, gen, at::kFloat) * 0.1;
  c.m = c.weight64.norm(2, 1).to(at::kFloat) * (at::rand({kOut}, gen, at::kFloat) * 0.4 + 0.8);
  c.x = at::randn({2, 5, kIn}, gen, at::kFloat);
  c.grad_out = at::randn({2, 5, kOut}, gen, at::kFloat);
  return c;
}

at::Tensor leaf(const at::Tensor& t) { return t.detach().clone().requires_grad_(true); }
at::Tensor leaf64(const at::Tensor& t) { return t.detach().to(at::kDouble).requires_grad_(true); }

struct Result {
  at::Tensor y, ga, gb, gm, gx;
};

// Runs the layer under test through Linear::forward and backward with grad_out.
Result run_hearth(Case& c, bool dora) {
  at::Tensor a = leaf(c.a), b = leaf(c.b), m = leaf(c.m), x = leaf(c.x);
  auto runtime = std::make_shared<AdapterRuntime>();
  if (dora)
    c.base.set_adapter(std::make_shared<DoraLayer>(a, b, m, kScale, runtime));
  else
    c.base.set_adapter(std::make_shared<LoraLayer>(a, b, kScale, runtime));
  at::Tensor y = c.base.forward(x);
  y.backward(c.grad_out);
  c.base.set_adapter(nullptr);
  return {y.detach(), a.grad(), b.grad(), dora ? m.grad() : at::Tensor(), x.grad()};
}

// The same layer written out plainly in double; DoRA's norm is a constant, as in the paper.
Result run_reference(const Case& c, bool dora) {
  at::Tensor a = leaf64(c.a), b = leaf64(c.b), m = leaf64(c.m), x = leaf64(c.x);
  at::Tensor wx = at::matmul(x, c.weight64.t());
  at::Tensor update = kScale * at::matmul(at::matmul(x, a.t()), b.t());
  at::Tensor y;
  if (dora) {
    at::Tensor norms = dora_row_norms_reference(c.weight64, c.a, c.b, kScale);  // no graph: a constant
    y = (m / norms) * (wx + update) + c.bias.to(at::kDouble);
  } else {
    y = wx + c.bias.to(at::kDouble) + update;
  }
  y.backward(c.grad_out.to(at::kDouble));
  return {y.detach(), a.grad(), b.grad(), dora ? m.grad() : at::Tensor(), x.grad()};
}

void expect_matches_reference(bool quantized, bool dora) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    Case c = make_case(seed, quantized);
    Result got = run_hearth(c, dora), want = run_reference(c, dora);
    EXPECT_LT(relative_error(got.y, want.y), 1e-4) << "output, seed " << seed;
    EXPECT_LT(relative_error(got.ga, want.ga), 1e-4) << "grad A, seed " << seed;
    EXPECT_LT(relative_error(got.gb, want.gb), 1e-4) << "grad B, seed " << seed;
    EXPECT_LT(relative_error(got.gx, want.gx), 1e-4) << "grad x, seed " << seed;
    if (dora) {
      EXPECT_LT(relative_error(got.gm, want.gm), 1e-4) << "grad magnitude, seed " << seed;
    }
  }
}

TEST(LoraLayer, OutputAndGradientsOverNf4BaseMatchDoubleReference) { expect_matches_reference(true, false); }
TEST(LoraLayer, OutputAndGradientsOverDenseBaseMatchDoubleReference) { expect_matches_reference(false, false); }
TEST(DoraLayer, OutputAndGradientsOverNf4BaseMatchDoubleReference) { expect_matches_reference(true, true); }
TEST(DoraLayer, OutputAndGradientsOverDenseBaseMatchDoubleReference) { expect_matches_reference(false, true); }

TEST(DoraLayer, RowNormsFromPackedWeightsMatchTheFormedMatrix) {
  for (uint64_t seed : {4u, 5u}) {
    Case c = make_case(seed, true);
    at::Tensor fast = dora_row_norms(c.base, c.a, c.b, kScale);
    at::Tensor ref = dora_row_norms_reference(c.weight64, c.a, c.b, kScale);
    EXPECT_LT(relative_error(fast, ref), 1e-6);
  }
}

TEST(DoraLayer, NormIsRecomputedAfterAnInPlaceUpdateOfB) {
  Case c = make_case(6, true);
  auto layer = std::make_shared<DoraLayer>(leaf(c.a), leaf(c.b), leaf(c.m), kScale, std::make_shared<AdapterRuntime>());
  at::Tensor before = layer->row_norms(c.base).clone();
  {
    at::NoGradGuard no_grad;
    layer->lora_B().mul_(3.0);  // what an optimizer step does
  }
  at::Tensor after = layer->row_norms(c.base);
  EXPECT_FALSE(at::equal(before, after));
  EXPECT_LT(relative_error(after, dora_row_norms_reference(c.weight64, c.a, c.b * 3.0, kScale)), 1e-6);
}

// The fp16 factors the decode step reads: A * 2^ka and B * 2^kb (in column tiles) with the power of two that puts
// the largest value in [2^14, 2^15), each within fp16's rounding (2^-11 of the value, 2^-25 for
// a subnormal) of the fp32 factor; made again after an in-place change (an optimizer step).
TEST(LoraLayer, Fp16FactorsForDecodeFollowTheFactors) {
  Case c = make_case(8, true);
  auto layer = std::make_shared<LoraLayer>(leaf(c.a), leaf(c.b), kScale, std::make_shared<AdapterRuntime>());
  auto expect_image = [](const uint16_t* half, float unscale, const at::Tensor& factor, const char* what) {
    at::Tensor f = factor.detach();
    const at::Tensor image =
        at::from_blob(const_cast<uint16_t*>(half), f.sizes(), at::kHalf).to(at::kDouble) * double(unscale);
    const double largest = f.abs().max().item<double>();
    EXPECT_GE(largest / unscale, 16384.0) << what;
    EXPECT_LT(largest / unscale, 32768.0) << what;
    const at::Tensor bound = f.to(at::kDouble).abs() * std::ldexp(1.0, -11) + double(unscale) * std::ldexp(1.0, -24);
    EXPECT_TRUE((image - f.to(at::kDouble)).abs().le(bound).all().item<bool>()) << what;
  };
  // B's image is in column tiles [tiles, rank, 16]: back to [rows, rank] for the comparison.
  auto expect_b_image = [&](const LowRankUpdate& u, const char* what) {
    const at::Tensor b = layer->lora_B().detach();
    const int64_t rows = b.size(0), rank = b.size(1), tiles = (rows + kLowRankTileRows - 1) / kLowRankTileRows;
    const at::Tensor image = at::from_blob(const_cast<uint16_t*>(u.b_tiles_fp16), {tiles, rank, kLowRankTileRows}, at::kHalf);
    const at::Tensor rows_first = image.permute({0, 2, 1}).reshape({tiles * kLowRankTileRows, rank});
    EXPECT_TRUE(rows_first.narrow(0, rows, tiles * kLowRankTileRows - rows).eq(0).all().item<bool>()) << what << ": padding";
    const at::Tensor b_rows = rows_first.narrow(0, 0, rows).contiguous();
    expect_image(reinterpret_cast<const uint16_t*>(b_rows.data_ptr<at::Half>()), u.b_fp16_scale, b, what);
  };
  LowRankUpdate u;
  ASSERT_TRUE(layer->low_rank_update(u));
  ASSERT_NE(u.a_fp16, nullptr);
  ASSERT_NE(u.b_tiles_fp16, nullptr);
  expect_image(u.a_fp16, u.a_fp16_scale, layer->lora_A(), "A");
  expect_b_image(u, "B");
  {
    at::NoGradGuard no_grad;
    layer->lora_B().mul_(1000.0);  // what an optimizer step does, by a lot
  }
  ASSERT_TRUE(layer->low_rank_update(u));
  expect_b_image(u, "B after an update");
}

// Generation (inference mode) adds the update from the decode step's fp16 images with its
// kernels: each row gets bitwise what it gets alone (as a decode step), whatever rows come with
// it, and the update is within fp16's rounding of the factors (2^-11 of each, so ~1e-3 of the
// update's size; 2e-3 leaves room for the float sums) of the double reference.
TEST(LoraLayer, GenerationAddsEachRowTheDecodeStepsUpdate) {
  Case c = make_case(9, true);
  auto layer = std::make_shared<LoraLayer>(leaf(c.a), leaf(c.b), kScale, std::make_shared<AdapterRuntime>());
  at::InferenceMode inference;
  const at::Tensor x = c.x.reshape({-1, kIn});
  const at::Tensor together = layer->apply(x, at::zeros({x.size(0), kOut}), c.base);
  for (int64_t r = 0; r < x.size(0); ++r) {
    const at::Tensor alone = layer->apply(x.narrow(0, r, 1), at::zeros({1, kOut}), c.base);
    EXPECT_TRUE(at::equal(alone[0], together[r])) << "row " << r;
  }
  const at::Tensor want = kScale * at::matmul(at::matmul(x.to(at::kDouble), c.a.to(at::kDouble).t()), c.b.to(at::kDouble).t());
  EXPECT_LT(relative_error(together, want), 2e-3);
}

TEST(LoraLayer, DropoutOnlyWhileTrainingAndReplayableFromTheSeed) {
  Case c = make_case(7, true);
  auto runtime = std::make_shared<AdapterRuntime>();
  runtime->dropout = 0.5;
  auto layer = std::make_shared<LoraLayer>(leaf(c.a), leaf(c.b), kScale, runtime);
  c.base.set_adapter(layer);
  at::NoGradGuard no_grad;
  const at::Tensor eval1 = c.base.forward(c.x), eval2 = c.base.forward(c.x);
  EXPECT_TRUE(at::equal(eval1, eval2));
  runtime->training = true;
  runtime->generator = make_generator(99);
  const at::Tensor train1 = c.base.forward(c.x);
  runtime->generator = make_generator(99);
  const at::Tensor train2 = c.base.forward(c.x);
  EXPECT_FALSE(at::allclose(train1, eval1));
  EXPECT_TRUE(at::equal(train1, train2));
}

TEST(DoraLayer, DropoutFollowsPeftFormula) {
  // With dropout, y = W x + b + (m/n - 1) W x' + (m/n) s B A x', x' the dropped input.
  Case c = make_case(8, false);
  auto runtime = std::make_shared<AdapterRuntime>();
  runtime->dropout = 0.3;
  runtime->training = true;
  auto layer = std::make_shared<DoraLayer>(leaf(c.a), leaf(c.b), leaf(c.m), kScale, runtime);
  c.base.set_adapter(layer);
  at::NoGradGuard no_grad;
  runtime->generator = make_generator(5);
  const at::Tensor got = c.base.forward(c.x);
  // Rebuild the same mask from the same generator.
  at::Generator gen = make_generator(5);
  at::Tensor mask = at::empty(c.x.sizes(), at::kFloat).bernoulli_(1.0 - 0.3, gen).div_(1.0 - 0.3);
  at::Tensor xd = c.x.to(at::kDouble) * mask.to(at::kDouble);
  at::Tensor ratio = c.m.to(at::kDouble) / dora_row_norms_reference(c.weight64, c.a, c.b, kScale);
  at::Tensor want = at::matmul(c.x.to(at::kDouble), c.weight64.t()) + c.bias.to(at::kDouble) +
                    (ratio - 1) * at::matmul(xd, c.weight64.t()) +
                    ratio * kScale * at::matmul(at::matmul(xd, c.a.to(at::kDouble).t()), c.b.to(at::kDouble).t());
  EXPECT_LT(relative_error(got, want), 1e-5);
}

}  // namespace
}  // namespace hearth
