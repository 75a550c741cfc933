// The fused decode loops against the decoder's differentiable expressions (or plain formulas)
// evaluated in double precision on fresh random inputs, and the rule for when the decoder may use them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "inference/decode_kernels.h"
#include "inference/rope.h"

namespace hearth {
namespace {

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(FusedRmsNorm, MatchesDoubleReference) {
  for (int64_t rows : {1, 7, 130}) {
    at::Tensor x = at::randn({rows, 1, 96}) * 3;
    at::Tensor w = at::rand({96}) + 0.5;
    const double eps = 1e-6;
    at::Tensor xd = x.to(at::kDouble);
    at::Tensor ref = xd * at::rsqrt(xd.pow(2).mean(-1, true) + eps) * w.to(at::kDouble);
    at::Tensor y = fused_rms_norm(x, w, eps);
    EXPECT_EQ(y.sizes(), x.sizes());
    EXPECT_LT(max_abs_diff(y, ref), 1e-5) << rows << " rows";
  }
}

TEST(FusedRmsNorm, ReadsNonContiguousInput) {
  at::Tensor x = at::randn({64, 5}).t();  // [5, 64], column-major
  at::Tensor w = at::rand({64});
  at::Tensor xd = x.to(at::kDouble);
  at::Tensor ref = xd * at::rsqrt(xd.pow(2).mean(-1, true) + 1e-5) * w.to(at::kDouble);
  EXPECT_LT(max_abs_diff(fused_rms_norm(x, w, 1e-5), ref), 1e-5);
}

TEST(FusedRope, MatchesRopeApplyInBothLayouts) {
  for (bool interleaved : {false, true}) {
    ModelConfig c;
    c.head_dim = 32;
    c.rope_interleaved = interleaved;
    Rope rope(c);
    for (int64_t t : {1, 9}) {
      at::Tensor x = at::randn({2, t, 3, 32});  // [B, T, H, D]
      at::Tensor pos = at::randint(0, 4000, {2, t}, at::kLong);
      auto [cos, sin] = rope.angles(pos);
      // Reference: Rope::apply on [B, H, T, D] in double precision.
      at::Tensor ref = rope.apply(x.transpose(1, 2).to(at::kDouble), cos.to(at::kDouble), sin.to(at::kDouble)).transpose(1, 2);
      at::Tensor y = fused_rope(x, cos, sin, interleaved);
      EXPECT_EQ(y.sizes(), x.sizes());
      EXPECT_LT(max_abs_diff(y, ref), 1e-5) << (interleaved ? "interleaved" : "half-split") << " T=" << t;
    }
  }
}

TEST(FusedRope, BroadcastsOneRowOfAnglesOverTheBatch) {
  ModelConfig c;
  c.head_dim = 16;
  Rope rope(c);
  at::Tensor x = at::randn({3, 4, 2, 16});
  auto [cos, sin] = rope.angles(at::arange(10, 14, at::kLong).unsqueeze(0));  // [1, 4, 8]
  at::Tensor ref = rope.apply(x.transpose(1, 2).to(at::kDouble), cos.to(at::kDouble), sin.to(at::kDouble)).transpose(1, 2);
  EXPECT_LT(max_abs_diff(fused_rope(x, cos, sin, false), ref), 1e-5);
}

// softmax(q k^T / sqrt(d)) v per query head in double, KV head h / group.
// Row `row` of q [1, T, heads, d] against the first `s` keys, in double.
at::Tensor attention_reference(const at::Tensor& q, int64_t row, const at::Tensor& keys, const at::Tensor& values, int64_t s) {
  const int64_t heads = q.size(2), d = q.size(3), group = heads / keys.size(1);
  std::vector<at::Tensor> outs;
  for (int64_t h = 0; h < heads; ++h) {
    at::Tensor qh = q[0][row][h].to(at::kDouble);
    at::Tensor k = keys[0][h / group].narrow(0, 0, s).to(at::kDouble), v = values[0][h / group].narrow(0, 0, s).to(at::kDouble);
    at::Tensor p = at::softmax(at::mv(k, qh) / std::sqrt(double(d)), 0);
    outs.push_back(at::mv(v.t(), p));
  }
  return at::cat(outs).view({1, 1, heads * d});
}

TEST(FusedDecodeAttention, MatchesDoubleReferenceOnCacheViews) {
  // Grouped heads (6 query heads on 2 or 3 KV heads, or one each), contexts from one position to
  // long enough that the heads are split over threads, one new row or a prompt's three (each
  // causal: row i sees the keys up to its own position); keys / values are narrowed views of a
  // larger buffer, as the KV cache returns them. Head widths: a tail alone (8), a block of 16
  // and a tail (24), two blocks (64): the scores' lane sums and their leftover products.
  for (int64_t d : {8, 24, 64})
  for (int64_t kv_heads : {2, 3, 6}) {
    for (int64_t s : {1, 7, 1500}) {
      for (int64_t t : {int64_t(1), std::min<int64_t>(3, s)}) {
        const int64_t heads = 6, capacity = s + 5;
        at::Tensor q = at::randn({1, t, heads, d});
        at::Tensor kbuf = at::randn({1, kv_heads, capacity, d}) * 2, vbuf = at::randn({1, kv_heads, capacity, d});
        at::Tensor keys = kbuf.narrow(2, 0, s), values = vbuf.narrow(2, 0, s);
        at::Tensor y = fused_decode_attention(q, keys, values);
        ASSERT_EQ(y.sizes(), (at::IntArrayRef{1, t, heads * d}));
        for (int64_t row = 0; row < t; ++row) {
          // float sums over at most 1500 terms of size ~1: 1e-5 absolute.
          EXPECT_LT(max_abs_diff(y[0][row].view({1, 1, -1}), attention_reference(q, row, keys, values, s - t + row + 1)), 1e-5)
              << "d=" << d << ", " << kv_heads << " KV heads, s=" << s << ", row " << row << " of " << t;
        }
      }
    }
  }
}

TEST(FusedDecodeAttention, RefusesABatchOrAMisfitCache) {
  EXPECT_THROW(fused_decode_attention(at::randn({2, 1, 4, 8}), at::randn({2, 2, 3, 8}), at::randn({2, 2, 3, 8})), Error);
  EXPECT_THROW(fused_decode_attention(at::randn({1, 1, 4, 8}), at::randn({1, 3, 3, 8}), at::randn({1, 3, 3, 8})), Error);
  EXPECT_THROW(fused_decode_attention(at::randn({1, 1, 4, 8}), at::randn({1, 2, 3, 16}), at::randn({1, 2, 3, 16})), Error);
  EXPECT_THROW(fused_decode_attention(at::randn({1, 4, 4, 8}), at::randn({1, 2, 3, 8}), at::randn({1, 2, 3, 8})), Error)
      << "more new rows than keys";
}

TEST(FusedSiluMul, MatchesDoubleReference) {
  at::Tensor gate = at::randn({1, 1, 70000}) * 6, up = at::randn({1, 1, 70000});
  at::Tensor gd = gate.to(at::kDouble);
  at::Tensor ref = gd * at::sigmoid(gd) * up.to(at::kDouble);
  // Products reach ~100 (gates to ~30, ups to ~4), where one float ulp is 7.6e-6: an absolute
  // bound flaked (1.01e-5 once on the AVX2 path). A dozen float operations, a few ulp each,
  // stay within 1e-6 of the product's size; 1e-12 covers products that round to 0.
  at::Tensor excess = (fused_silu_mul(gate, up).to(at::kDouble) - ref).abs() - (ref.abs() * 1e-6 + 1e-12);
  EXPECT_LE(excess.max().item<double>(), 0.0) << "worst at element " << excess.argmax().item<int64_t>();
}

// silu's own exp: across the whole float range that matters and past it (e^-g overflows float
// beyond g = -88), each product within 1e-6 of its size. The exp's series is truncated at
// 1.3e-7 relative, and the float rounding of a dozen operations adds a few ulp (6e-8 each).
// Below g = -87 every path gives 0 where |silu * up| is under 87 e^-87 = 1.44e-36: the 1.5e-36
// allowance. The gates just past that cutoff are in the list, where random ups near 1 once found
// a vector path whose reciprocal estimate flushed to zero before the scalar path's cutoff.
TEST(FusedSiluMul, StaysAccurateAtTheExtremes) {
  std::vector<float> g = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 86.9f, -86.9f, 87.5f, -87.5f, 88.7f, -88.7f, -86.99f, -87.01f, -87.34f, -87.5f,
                          100.0f, -100.0f, 1e6f, -1e6f, 3e38f, -3e38f};
  const int64_t listed = static_cast<int64_t>(g.size());
  at::Tensor spread = at::linspace(-90, 90, 18001);
  g.insert(g.end(), spread.data_ptr<float>(), spread.data_ptr<float>() + spread.numel());
  const int64_t n = static_cast<int64_t>(g.size());
  at::Tensor gate = at::from_blob(g.data(), {1, 1, n}).clone(), up = at::rand({1, 1, n}) * 0.5 + 0.5;  // |g * up| stays within float
  up.narrow(2, 0, listed).fill_(1.0f);  // the listed gates at their largest products, every run
  at::Tensor gd = gate.to(at::kDouble), ud = up.to(at::kDouble);
  at::Tensor ref = gd * at::sigmoid(gd) * ud;
  at::Tensor got = fused_silu_mul(gate, up).to(at::kDouble);
  ASSERT_TRUE(at::isfinite(got).all().item<bool>());
  at::Tensor excess = (got - ref).abs() - (ref.abs() * 1e-6 + 1.5e-36);
  EXPECT_LE(excess.max().item<double>(), 0.0) << "worst at gate " << g[excess.argmax().item<int64_t>()];
}

// A NaN or infinite gate (a broken adapter, a diverged model) must pass through as NaN or the
// limit, never reach exp's float-to-int conversion (undefined; the fuzzers' UBSan found it when
// the clamps were first written out by hand): NaN stays NaN, +inf gives inf * up, -inf gives 0.
TEST(FusedSiluMul, NanAndInfiniteGatesStayNanOrTheirLimit) {
  std::vector<float> g(40, 1.0f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  g[3] = nan, g[17] = inf, g[31] = -inf;
  at::Tensor gate = at::from_blob(g.data(), {1, 1, 40}).clone(), up = at::full({1, 1, 40}, 2.0f);
  at::Tensor got = fused_silu_mul(gate, up);
  EXPECT_TRUE(std::isnan(got[0][0][3].item<float>()));
  EXPECT_EQ(got[0][0][17].item<float>(), inf);
  EXPECT_EQ(got[0][0][31].item<float>(), 0.0f);
  EXPECT_NEAR(got[0][0][0].item<float>(), 2.0 / (1.0 + std::exp(-1.0)), 1e-6);
}

// The vector paths divide through a reciprocal estimate, so an element computed in a scalar
// tail would round differently: a row split into calls anywhere (fused_silu_mul's parallel
// ranges, the decode plan's rows) must give bitwise the whole row's values, NaN and infinite
// gates in the partial vectors included.
TEST(FusedSiluMul, AnElementsValueDoesNotDependOnWhereTheCallStarts) {
  const int64_t n = 1000;
  at::Tensor gate = at::randn({n}) * 6, up = at::randn({n});
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  gate[5] = nan, gate[28] = inf, gate[29] = -inf, gate[998] = nan;
  at::Tensor whole = at::empty({n}), pieces = at::empty({n});
  silu_mul_row(gate.data_ptr<float>(), up.data_ptr<float>(), n, whole.data_ptr<float>());
  const std::vector<int64_t> cuts = {0, 7, 30, 531, 999, n};
  for (size_t i = 0; i + 1 < cuts.size(); ++i)
    silu_mul_row(gate.data_ptr<float>() + cuts[i], up.data_ptr<float>() + cuts[i], cuts[i + 1] - cuts[i],
                 pieces.data_ptr<float>() + cuts[i]);
  EXPECT_TRUE(std::isnan(whole[5].item<float>()) && std::isnan(pieces[998].item<float>()));
  EXPECT_EQ(pieces[29].item<float>(), 0.0f);
  // NaN != NaN: compare bytes.
  EXPECT_EQ(std::memcmp(whole.data_ptr<float>(), pieces.data_ptr<float>(), n * sizeof(float)), 0);
}

// The adapters' fp16 factors in the decode step: against a double-precision product of the
// same fp16 values (only fp32 accumulation differs: 1e-5 of the sum of |terms| covers 896-term
// fp32 sums with margin), and against the fp32 factors they were rounded from (rounding to
// nearest moves a normal value by at most 2^-11 of itself, a subnormal one by at most 2^-25).
TEST(DenseRowsFp16, MatchesDoubleReferenceAndTheFp32FactorsWithinRounding) {
  for (int64_t cols : {16, 37, 896}) {
    const int64_t rows = 23;
    const at::Tensor m = at::randn({rows, cols}) * 0.05;
    const at::Tensor m16 = m.to(at::kHalf);
    const at::Tensor x = at::randn({cols});
    at::Tensor y = at::randn({rows});
    const at::Tensor y0 = y.clone();
    const float alpha = 0.75f;
    dense_rows_fp16(reinterpret_cast<const uint16_t*>(m16.data_ptr<at::Half>()), cols, x.data_ptr<float>(), 2, rows,
                    alpha, /*accumulate=*/true, y.data_ptr<float>());
    const at::Tensor xd = x.to(at::kDouble);
    const at::Tensor exact = at::mv(m16.to(at::kDouble), xd) * alpha + y0.to(at::kDouble);
    const at::Tensor from_fp32 = at::mv(m.to(at::kDouble), xd) * alpha + y0.to(at::kDouble);
    const at::Tensor magnitude = at::mv(m.to(at::kDouble).abs(), xd.abs()) * alpha;
    const double x_sum = xd.abs().sum().item<double>() * alpha;
    EXPECT_EQ(y[0].item<float>(), y0[0].item<float>()) << "rows before r0 are left alone";
    EXPECT_EQ(y[1].item<float>(), y0[1].item<float>());
    for (int64_t r = 2; r < rows; ++r) {
      const double got = y[r].item<double>(), bound = magnitude[r].item<double>();
      EXPECT_NEAR(got, exact[r].item<double>(), 1e-5 * bound + 1e-6) << cols << " cols, row " << r;
      EXPECT_NEAR(got, from_fp32[r].item<double>(),
                  std::ldexp(1.0, -11) * bound + std::ldexp(x_sum, -25) + 1e-5 * bound + 1e-6)
          << cols << " cols, row " << r;
    }
  }
}

// B [rows, rank] fp16 in the documented column tiles: element [t][j][l] = B[16t + l, j], zero past
// the last row.
std::vector<uint16_t> column_tiles(const at::Tensor& b16) {
  const int64_t rows = b16.size(0), rank = b16.size(1), tiles = (rows + 15) / 16;
  std::vector<uint16_t> out(tiles * rank * 16, 0);
  const at::Tensor c = b16.contiguous();
  const uint16_t* src = reinterpret_cast<const uint16_t*>(c.data_ptr<at::Half>());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < rank; ++j) out[((r / 16) * rank + j) * 16 + r % 16] = src[r * rank + j];
  return out;
}

// s B u from B's fp16 column tiles, over a row range that starts and ends off the vector width:
// against the double product of the same fp16 values (fp32 sums of 16 terms in another order:
// 1e-5 of the sum of |terms|), leaving the rows outside the range alone; and each row's result
// bitwise the same from another range (the decode step's chunks and a prompt's rows agree).
TEST(DenseColsFp16, MatchesDoubleReferenceOverARowRange) {
  for (int64_t rank : {1, 16, 7}) {
    const int64_t rows = 77, r0 = 3, r1 = 70;
    const at::Tensor b16 = (at::randn({rows, rank}) * 0.05).to(at::kHalf);
    const std::vector<uint16_t> tiles = column_tiles(b16);
    const at::Tensor u = at::randn({rank});
    at::Tensor y = at::randn({rows});
    const at::Tensor y0 = y.clone();
    const float alpha = 1.5f;
    dense_cols_fp16(tiles.data(), rank, u.data_ptr<float>(), r0, r1, alpha, y.data_ptr<float>());
    const at::Tensor m = b16.to(at::kDouble);  // [rows, rank]
    const at::Tensor exact = at::mv(m, u.to(at::kDouble)) * alpha + y0.to(at::kDouble);
    const at::Tensor magnitude = at::mv(m.abs(), u.to(at::kDouble).abs()) * alpha;
    for (int64_t r = 0; r < rows; ++r) {
      if (r < r0 || r >= r1) {
        EXPECT_EQ(y[r].item<float>(), y0[r].item<float>()) << "row " << r << " is outside the range";
        continue;
      }
      EXPECT_NEAR(y[r].item<double>(), exact[r].item<double>(), 1e-5 * magnitude[r].item<double>() + 1e-6)
          << "rank " << rank << ", row " << r;
    }
    at::Tensor whole = y0.clone();
    dense_cols_fp16(tiles.data(), rank, u.data_ptr<float>(), 0, rows, alpha, whole.data_ptr<float>());
    EXPECT_TRUE(at::equal(whole.narrow(0, r0, r1 - r0), y.narrow(0, r0, r1 - r0))) << "rank " << rank;
  }
}

// The column tiles of B: every element in its documented place, as fp16 of B times the
// multiplier (round to nearest: 2^-11 of the value), and the padding past the last row zero.
TEST(LowRankBTiles, PlacesEveryFactorInItsTileAndPadsWithZeros) {
  const int64_t rows = 37, rank = 5;
  const at::Tensor b = at::randn({rows, rank});
  const at::Tensor tiles = low_rank_b_tiles_fp16(b, 8.0);
  ASSERT_EQ(tiles.sizes(), (at::IntArrayRef{3, rank, 16}));
  ASSERT_EQ(tiles.scalar_type(), at::kHalf);
  const at::Tensor t = tiles.to(at::kDouble);
  for (int64_t r = 0; r < 48; ++r)
    for (int64_t j = 0; j < rank; ++j) {
      const double got = t[r / 16][j][r % 16].item<double>();
      if (r >= rows) {
        EXPECT_EQ(got, 0.0) << "padding row " << r;
        continue;
      }
      const double want = b[r][j].item<double>() * 8.0;
      EXPECT_NEAR(got, want, std::abs(want) * std::ldexp(1.0, -11) + 1e-7) << "row " << r << ", factor " << j;
    }
}

TEST(CanFuseForInference, OnlyWithoutGradientsAndInFp32) {
  at::Tensor x = at::randn({2, 8}), w = at::ones({8});
  EXPECT_TRUE(can_fuse_for_inference(x, w));
  EXPECT_FALSE(can_fuse_for_inference(x.clone().requires_grad_(), w));
  EXPECT_FALSE(can_fuse_for_inference(x, w.clone().requires_grad_()));
  EXPECT_FALSE(can_fuse_for_inference(x.to(at::kBFloat16), w));
}

}  // namespace
}  // namespace hearth
