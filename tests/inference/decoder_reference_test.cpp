// The decoder's pieces against plain double-precision references on fresh random inputs:
// RoPE layouts, Llama 3 frequency scaling, the segment mask of packed training rows.
#include <gtest/gtest.h>

#include <cmath>

#include "inference/llama2c_model.h"
#include "inference/rope.h"

namespace hearth {
namespace {

TEST(Rope, InterleavedMatchesPairwiseRotation) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_interleaved = true;
  Rope rope(c);
  at::Tensor x = at::randn({1, 2, 5, 8});
  at::Tensor pos = at::arange(3, 8, at::kLong).unsqueeze(0);
  auto [cos, sin] = rope.angles(pos);
  at::Tensor y = rope.apply(x, cos, sin);
  auto xa = x.accessor<float, 4>();
  auto ya = y.accessor<float, 4>();
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < 5; ++t)
      for (int i = 0; i < 4; ++i) {
        const double theta = (3 + t) * std::pow(10000.0, -2.0 * i / 8);
        const double a = xa[0][h][t][2 * i], b = xa[0][h][t][2 * i + 1];
        EXPECT_NEAR(ya[0][h][t][2 * i], a * std::cos(theta) - b * std::sin(theta), 1e-5);
        EXPECT_NEAR(ya[0][h][t][2 * i + 1], a * std::sin(theta) + b * std::cos(theta), 1e-5);
      }
}

TEST(Rope, PermutedRowsTurnInterleavedIntoHalfSplit) {
  // q = W x; rotating the interleaved q equals rotating (P W) x half-split, then un-permuting.
  ModelConfig c;
  c.head_dim = 16;
  ModelConfig ci = c;
  ci.rope_interleaved = true;
  Rope half(c), inter(ci);
  at::Tensor w = at::randn({2 * 16, 12});
  at::Tensor x = at::randn({12});
  at::Tensor pos = at::full({1, 1}, 11, at::kLong);
  auto [cos, sin] = half.angles(pos);
  at::Tensor q_inter = inter.apply(at::mv(w, x).view({1, 2, 1, 16}), cos, sin);
  at::Tensor q_half = half.apply(at::mv(permute_rotary_rows(w, 2, 16), x).view({1, 2, 1, 16}), cos, sin);
  // Attention only sees dot products: compare q.k with a key rotated the same way.
  at::Tensor k = at::randn({12});
  at::Tensor k_inter = inter.apply(at::mv(w, k).view({1, 2, 1, 16}), cos, sin);
  at::Tensor k_half = half.apply(at::mv(permute_rotary_rows(w, 2, 16), k).view({1, 2, 1, 16}), cos, sin);
  at::Tensor dot_inter = (q_inter * k_inter).sum(-1), dot_half = (q_half * k_half).sum(-1);
  EXPECT_TRUE(at::allclose(dot_inter, dot_half, 1e-4, 1e-4));
}

TEST(Rope, Llama3ScalingFollowsTheThreeBands) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 500000;
  c.rope_scaling = {true, 32.0, 1.0, 4.0, 8192};
  Rope rope(c);
  at::Tensor inv = rope.inverse_frequencies();
  for (int i = 0; i < 32; ++i) {
    const double f = std::pow(500000.0, -2.0 * i / 64);
    const double wavelen = 2 * M_PI / f;
    double expected;
    if (wavelen < 8192.0 / 4.0) {
      expected = f;
    } else if (wavelen > 8192.0) {
      expected = f / 32.0;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      expected = (1 - smooth) * f / 32.0 + smooth * f;
    }
    EXPECT_NEAR(inv[i].item<float>(), expected, 1e-6 * expected + 1e-12) << i;
  }
}

}  // namespace
}  // namespace hearth
