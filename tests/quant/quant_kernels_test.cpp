#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <cmath>

#include "core/error.h"
#include "inference/quant/quant_embedding.h"
#include "inference/quant/quant_matmul.h"
#include "inference/quant/quant_reference.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

constexpr QuantFormat kFormats[] = {QuantFormat::kNF4,  QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8, QuantFormat::kQ8_0,
                                    QuantFormat::kQ4_0, QuantFormat::kQ4_1, QuantFormat::kQ4_K, QuantFormat::kQ5_K,
                                    QuantFormat::kQ6_K, QuantFormat::kF16,  QuantFormat::kBF16};
// The formats the int8-activation GEMV serves (GGUF formats always take the float GEMV).
constexpr QuantFormat kInt8ActivationFormats[] = {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4,
                                                  QuantFormat::kInt8};
// Odd shapes: columns that are not multiples of 32 / 64 or of the vector width, a single row.
// 4099 rows: a GEMV splits into several row chunks claimed by the threads, the last one short.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{37, 70}, {129, 200}, {64, 64}, {1, 33}, {5, 1}, {300, 97}, {4099, 64}, {33, 600}, {9, 576}};

// |y - ref| <= tol * sum |W| |x| per element (float accumulation error relative to the terms;
// weight_magnitude adds nf4's absmax rebuilding); a wrong kernel is off by orders of magnitude more.
constexpr double kTol = 4e-5;

// Float kernels are checked against the exact dequantized product; the int8-activation kernel
// against the same product with x rounded to int8 as it defines it (reference_matvec_q8).
TEST(QuantKernels, MatvecMatchesDoubleReferenceOnEveryIsaAndThreadCount) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kFormats) {
    for (auto [rows, cols] : kShapes) {
      QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      at::Tensor wd = reference_dequantize(m);
      at::Tensor x = at::randn({cols}, gen);
      at::Tensor xd = x.to(at::kDouble);
      at::Tensor ref = test::as_tensor(reference_matvec(m, xd.data_ptr<double>()));
      at::Tensor ref_q8 = test::as_tensor(reference_matvec_q8(m, x.data_ptr<float>()));
      at::Tensor abs_ref = at::mv(test::weight_magnitude(m, wd, kTol), xd.abs());
      for (KernelIsa isa : test::supported_isas()) {
        force_kernel_isa(isa);
        const bool int8_activations = uses_int8_activations(active_kernels(), format);
        for (int threads : {1, 2}) {
          set_num_threads(threads);
          at::Tensor y = at::full({rows}, std::nanf(""));
          quant_matvec(m, x.data_ptr<float>(), y.data_ptr<float>());
          const std::string what = std::string(quant_format_name(format)) + " " + kernel_isa_name(isa) + " " +
                                   std::to_string(rows) + "x" + std::to_string(cols) + " threads " + std::to_string(threads);
          test::expect_close_to_reference(y, int8_activations ? ref_q8 : ref, abs_ref, kTol, what);
          // Asked for the exact product, every kernel set gives it.
          y.fill_(std::nanf(""));
          quant_matvec(m, x.data_ptr<float>(), y.data_ptr<float>(), ActivationRounding::kExact);
          test::expect_close_to_reference(y, ref, abs_ref, kTol, what + " exact");
        }
      }
    }
  }
}

// What rounding x to int8 may cost against the exact product, element by element: each x moves
// by at most half its block's step (absmax / 254) and each NF4 code value by at most 1/254 of
// the block absmax, so |error| <= sum |w| * step / 2 + sum (|x| + step / 2) * absmax / 254.
// Run on every kernel set that has an int8-activation GEMV (AVX2's vpmaddubsw and AVX-512
// VNNI's vpdpbusd): on an AVX2-only machine or under HEARTH_ISA=avx2 the AVX2 one is still tested.
TEST(QuantKernels, Int8ActivationErrorStaysWithinItsRoundingBound) {
  test::KernelGuard guard;
  std::vector<KernelIsa> int8_isas;
  for (KernelIsa isa : test::supported_isas()) {
    force_kernel_isa(isa);
    if (active_kernels().matmul_q8_rows != nullptr) int8_isas.push_back(isa);
  }
  if (!cpu_supports_isa(KernelIsa::kAvx2)) GTEST_SKIP() << "no SIMD kernel set with int8 activations allowed here";
  ASSERT_FALSE(int8_isas.empty()) << "AVX2 is available, so its int8-activation GEMV must be";
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kInt8ActivationFormats) {
    for (auto [rows, cols] : kShapes) {
      QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      at::Tensor wd = reference_dequantize(m);
      at::Tensor x = at::randn({cols}, gen);
      at::Tensor ref = at::mv(wd, x.to(at::kDouble));
      // Per column: the x step of its block, and the largest |w| change of the nf4 int8 table.
      const int64_t bs = m.block_size(), nb = m.blocks_per_row();
      at::Tensor xblocks = at::constant_pad_nd(x.abs(), {0, nb * bs - cols}).view({nb, bs});
      at::Tensor step = (std::get<0>(xblocks.max(1)) / 127.0).repeat_interleave(bs).narrow(0, 0, cols).to(at::kDouble);
      at::Tensor bound = at::mv(wd.abs(), step / 2) + kTol * at::mv(test::weight_magnitude(m, wd, kTol), x.abs().to(at::kDouble));
      if (is_nf4_format(format)) {
        // The row's largest |w| bounds every block absmax of the row (a block's largest weight
        // always takes the code of +-1).
        at::Tensor row_absmax = std::get<0>(wd.abs().max(1));
        bound = bound + row_absmax / 254.0 * (x.abs().to(at::kDouble) + step / 2).sum();
      }
      for (KernelIsa isa : int8_isas) {
        force_kernel_isa(isa);
        at::Tensor y = at::empty({rows});
        quant_matvec(m, x.data_ptr<float>(), y.data_ptr<float>());
        at::Tensor err = (y.to(at::kDouble) - ref).abs();
        EXPECT_TRUE((err <= bound).all().item<bool>())
            << kernel_isa_name(isa) << " " << quant_format_name(format) << " " << rows << "x" << cols << ": max error / bound " << (err / bound).max().item<double>()
            << " at row " << (err / bound).argmax().item<int64_t>() << ": error " << err[(err / bound).argmax()].item<double>()
            << " bound " << bound[(err / bound).argmax()].item<double>() << " y " << y[(err / bound).argmax()].item<float>()
            << " ref " << ref[(err / bound).argmax()].item<double>();
        // And it is tight enough to matter: the error is about 1% of the terms' magnitude |W| |x|.
        EXPECT_LT(err.norm().item<double>(), 0.03 * at::mv(wd.abs(), x.abs().to(at::kDouble)).norm().item<double>() + 1e-6);
      }
    }
  }
}

// A batched decode step hands the int8-activation GEMV several sequences at once: each must get
// bitwise what it gets alone (so a request decodes the same in any batch), whatever row range
// the call covers, and that must be the product (checked against the double reference of the
// same int8 rounding).
TEST(QuantKernels, BatchedInt8GemvGivesEverySequenceExactlyWhatItGetsAlone) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  bool ran = false;
  for (KernelIsa isa : test::supported_isas()) {
    force_kernel_isa(isa);
    const QuantKernelSet& k = active_kernels();
    if (k.matmul_q8_rows == nullptr) continue;
    ran = true;
    for (QuantFormat format : kInt8ActivationFormats) {
      for (auto [rows, cols] : kShapes) {
        QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
        const PackedView v = m.view();
        constexpr int64_t kSeqs = 15;  // a pass of eight, then chunks of four and three
        std::vector<Q8Activation> q8(kSeqs);
        std::vector<at::Tensor> alone, together;
        std::vector<const Q8Activation*> xs;
        std::vector<float*> ys;
        for (int64_t s = 0; s < kSeqs; ++s) {
          at::Tensor x = at::randn({cols}, gen) * (s + 1);  // differently scaled sequences
          at::Tensor padded = at::zeros({m.padded_cols()});
          padded.narrow(0, 0, cols).copy_(x);
          k.quantize_activation(v, padded.data_ptr<float>(), q8[s]);
          alone.push_back(at::full({rows}, std::nanf("")));
          matvec_q8_rows(k, v, q8[s], alone.back().data_ptr<float>(), 0, rows);
          at::Tensor ref = test::as_tensor(reference_matvec_q8(m, x.data_ptr<float>()));
          at::Tensor abs_ref = at::mv(test::weight_magnitude(m, reference_dequantize(m), kTol), x.abs().to(at::kDouble));
          test::expect_close_to_reference(alone.back(), ref, abs_ref, kTol,
                                    std::string(kernel_isa_name(isa)) + " " + quant_format_name(format) + " alone");
          together.push_back(at::full({rows}, std::nanf("")));
          xs.push_back(&q8[s]);
          ys.push_back(together.back().data_ptr<float>());
        }
        // Two calls split at an odd row, as a product's row chunks would be.
        const int64_t split = rows / 2 | 1;
        k.matmul_q8_rows(v, xs.data(), kSeqs, ys.data(), 0, std::min(split, rows));
        k.matmul_q8_rows(v, xs.data(), kSeqs, ys.data(), std::min(split, rows), rows);
        for (int64_t s = 0; s < kSeqs; ++s)
          EXPECT_TRUE(at::equal(together[s], alone[s]))
              << kernel_isa_name(isa) << " " << quant_format_name(format) << " " << rows << "x" << cols << " sequence " << s
              << ": max difference " << (together[s] - alone[s]).abs().max().item<float>();
      }
    }
  }
  if (!ran && cpu_supports_isa(KernelIsa::kAvx2)) ADD_FAILURE() << "AVX2 is available, so its int8-activation GEMV must be";
}

TEST(QuantKernels, TileDequantizationMatchesReferenceOnEveryIsa) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kFormats) {
    QuantizedMatrix m = quantize_matrix(test::random_weight(45, 150, gen), format);
    at::Tensor ref = reference_dequantize(m);
    const double tol = 1e-6 * ref.abs().max().item<double>();
    for (KernelIsa isa : test::supported_isas()) {
      force_kernel_isa(isa);
      const double err = (dequantize_matrix(m).to(at::kDouble) - ref).abs().max().item<double>();
      EXPECT_LE(err, tol) << quant_format_name(format) << " " << kernel_isa_name(isa);
    }
  }
}

TEST(QuantKernels, MatmulAndTransposedMatchDoubleReference) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kFormats) {
    for (auto [rows, cols] : kShapes) {
      QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      at::Tensor wd = reference_dequantize(m);
      at::Tensor wmag = test::weight_magnitude(m, wd, kTol);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (int64_t n : {1, 3, 17}) {
          const std::string what = std::string(quant_format_name(format)) + " " + std::to_string(rows) + "x" +
                                   std::to_string(cols) + " n=" + std::to_string(n) + " threads " + std::to_string(threads);
          at::Tensor x = at::randn({n, cols}, gen);
          at::Tensor xd = x.to(at::kDouble);
          at::Tensor y = quant_matmul(m, x);
          ASSERT_EQ(y.sizes(), (std::vector<int64_t>{n, rows}));
          // One row goes through the decode GEMV, which may round x to int8 (see the Matvec test).
          at::Tensor expected = at::mm(xd, wd.t());
          if (n == 1 && uses_int8_activations(active_kernels(), format)) {
            expected = test::as_tensor(reference_matvec_q8(m, x.data_ptr<float>())).view({1, rows});
          }
          test::expect_close_to_reference(y, expected, at::mm(xd.abs(), wmag.t()), kTol, what);
          at::Tensor g = at::randn({n, rows}, gen);
          at::Tensor gd = g.to(at::kDouble);
          at::Tensor gx = quant_matmul_transposed(m, g);
          ASSERT_EQ(gx.sizes(), (std::vector<int64_t>{n, cols}));
          test::expect_close_to_reference(gx, at::mm(gd, wd), at::mm(gd.abs(), wmag), kTol, what + " transposed");
        }
      }
    }
  }
}

// A generation's prompt (PromptRowsScope): with int8-activation kernels every row is exactly
// what a decode step computes for it alone (so a prompt computes the same however it is cut),
// and that is the product with x rounded to int8 (the double reference); 300 rows span three
// calls of 128 and a group of four past the groups of eight. Formats without those kernels (the
// GGUF blocks, or every format on the portable path) keep the exact GEMM.
TEST(QuantKernels, PromptRowsComputeEachRowAsItsDecodeStep) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (KernelIsa isa : test::supported_isas()) {
    force_kernel_isa(isa);
    for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8, QuantFormat::kQ4_0}) {
      const int64_t rows = 129, cols = 200, n = 300;
      QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), format);
      at::Tensor wd = reference_dequantize(m);
      at::Tensor x = at::randn({n, cols}, gen);
      at::Tensor y;
      {
        PromptRowsScope prompt;
        y = quant_matmul(m, x);
      }
      const std::string what = std::string(kernel_isa_name(isa)) + " " + quant_format_name(format);
      at::Tensor abs_ref = at::mm(x.abs().to(at::kDouble), test::weight_magnitude(m, wd, kTol).t());
      if (!uses_int8_activations(active_kernels(), format)) {
        test::expect_close_to_reference(y, at::mm(x.to(at::kDouble), wd.t()), abs_ref, kTol, what + " exact");
        continue;
      }
      for (int64_t i : {int64_t(0), int64_t(7), int64_t(8), int64_t(131), n - 1}) {
        at::Tensor alone = quant_matmul(m, x.narrow(0, i, 1));
        EXPECT_TRUE(at::equal(y.narrow(0, i, 1), alone)) << what << " row " << i;
        at::Tensor ref = test::as_tensor(reference_matvec_q8(m, x[i].contiguous().data_ptr<float>())).view({1, rows});
        test::expect_close_to_reference(y.narrow(0, i, 1), ref, abs_ref.narrow(0, i, 1), kTol, what + " row " + std::to_string(i));
      }
    }
  }
}

TEST(QuantKernels, MatmulSpansSeveralTiles) {
  // Enough rows for several dequantized tiles, with a partial last tile.
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  const int64_t cols = 1000, rows = quant_tile_rows(1024) * 3 + 5;
  QuantizedMatrix m = quantize_matrix(test::random_weight(rows, cols, gen), QuantFormat::kNF4);
  at::Tensor wd = dequantize_matrix(m).to(at::kDouble);
  at::Tensor x = at::randn({4, cols}, gen), g = at::randn({4, rows}, gen);
  at::Tensor xd = x.to(at::kDouble), gd = g.to(at::kDouble);
  at::Tensor wmag = test::weight_magnitude(m, wd, kTol);
  test::expect_close_to_reference(quant_matmul(m, x), at::mm(xd, wd.t()), at::mm(xd.abs(), wmag.t()), kTol, "matmul");
  test::expect_close_to_reference(quant_matmul_transposed(m, g), at::mm(gd, wd), at::mm(gd.abs(), wmag), kTol, "transposed");
}

// Decoding runs under InferenceMode and autograd functions without grad mode, both thread-local:
// the GEMMs' worker threads must run under the caller's modes.
TEST(QuantKernels, MatmulRunsUnderInferenceModeOnSeveralThreads) {
  test::KernelGuard guard;
  set_num_threads(2);
  auto gen = make_generator(test::fresh_seed());
  QuantizedMatrix m = quantize_matrix(test::random_weight(quant_tile_rows(1024) * 3, 1000, gen), QuantFormat::kNF4);
  at::Tensor x = at::randn({5, 1000}, gen), g = at::randn({5, m.rows}, gen);
  at::Tensor y_plain = quant_matmul(m, x), gx_plain = quant_matmul_transposed(m, g);
  c10::InferenceMode inference;
  EXPECT_TRUE(at::equal(quant_matmul(m, x), y_plain));
  EXPECT_TRUE(at::equal(quant_matmul_transposed(m, g), gx_plain));
}

TEST(QuantKernels, MatmulRejectsWrongInputWidth) {
  QuantizedMatrix m = quantize_matrix(at::randn({8, 40}), QuantFormat::kInt8);
  EXPECT_THROW(quant_matmul(m, at::randn({2, 41})), Error);
  EXPECT_THROW(quant_matmul_transposed(m, at::randn({2, 7})), Error);
}

TEST(QuantKernels, CannotForceAnUnsupportedIsa) {
  test::KernelGuard guard;
  for (KernelIsa isa : {KernelIsa::kAvx2, KernelIsa::kAvx512}) {
    if (!cpu_supports_isa(isa)) {
      EXPECT_THROW(force_kernel_isa(isa), Error);
    } else {
      force_kernel_isa(isa);
      EXPECT_STREQ(active_kernels().name, kernel_isa_name(isa));
    }
  }
}

TEST(QuantEmbedding, ReturnsTheDequantizedRowsOfTheIds) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : kFormats) {
    QuantizedMatrix m = quantize_matrix(test::random_weight(50, 75, gen), format);
    at::Tensor ref = reference_dequantize(m);
    at::Tensor ids = at::randint(0, 50, {2, 6}, gen);
    at::Tensor e = quant_embedding(m, ids);
    ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 6, 75}));
    const double err = (e.to(at::kDouble) - ref.index_select(0, ids.view(-1)).view({2, 6, 75})).abs().max().item<double>();
    EXPECT_LE(err, 1e-6 * ref.abs().max().item<double>()) << quant_format_name(format);
  }
}

TEST(QuantEmbedding, RejectsOutOfRangeIds) {
  QuantizedMatrix m = quantize_matrix(at::randn({10, 16}), QuantFormat::kInt8);
  try {
    quant_embedding(m, at::tensor({3, 10}, at::kLong));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("10"), std::string::npos);
  }
  EXPECT_THROW(quant_embedding(m, at::tensor({-1}, at::kLong)), Error);
}

}  // namespace
}  // namespace hearth
