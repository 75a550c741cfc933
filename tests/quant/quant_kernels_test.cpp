#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "inference/quant/quant_embedding.h"
#include "inference/quant/quant_matmul.h"
#include "inference/quant/quant_reference.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

constexpr QuantFormat kFormats[] = {QuantFormat::kNF4, QuantFormat::kInt4, QuantFormat::kInt8};
// Odd shapes: columns that are not multiples of 32 / 64 or of the vector width, a single row.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{37, 70}, {129, 200}, {64, 64}, {1, 33}, {5, 1}, {300, 97}};

// |y - ref| <= tol * sum |W x| per element: float accumulation error relative to the terms.
// kTol leaves room for the kernels rebuilding nf4's double-quantized absmax in fp32
// (code * scale + offset can cancel): seen up to 1.2e-5 on one-column rows; a wrong kernel is
// off by orders of magnitude more.
constexpr double kTol = 4e-5;
void expect_close_to_reference(const at::Tensor& y, const at::Tensor& ref, const at::Tensor& abs_ref, double tol,
                               const std::string& what) {
  at::Tensor err = (y.to(at::kDouble) - ref).abs();
  at::Tensor bound = abs_ref * tol + 1e-9;
  const bool ok = (err <= bound).all().item<bool>();
  EXPECT_TRUE(ok) << what << ": max error " << err.max().item<double>() << ", max ratio "
                  << (err / bound).max().item<double>();
}

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
      at::Tensor ref = at::from_blob(reference_matvec(m, xd.data_ptr<double>()).data(), {rows}, at::kDouble).clone();
      at::Tensor abs_ref = at::mv(wd.abs(), xd.abs());
      for (KernelIsa isa : test::supported_isas()) {
        force_kernel_isa(isa);
        for (int threads : {1, 2}) {
          set_num_threads(threads);
          at::Tensor y = at::full({rows}, std::nanf(""));
          quant_matvec(m, x.data_ptr<float>(), y.data_ptr<float>());
          expect_close_to_reference(y, ref, abs_ref, kTol,
                                    std::string(quant_format_name(format)) + " " + kernel_isa_name(isa) + " " +
                                        std::to_string(rows) + "x" + std::to_string(cols) + " threads " + std::to_string(threads));
        }
      }
    }
  }
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
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (int64_t n : {1, 3, 17}) {
          const std::string what = std::string(quant_format_name(format)) + " " + std::to_string(rows) + "x" +
                                   std::to_string(cols) + " n=" + std::to_string(n) + " threads " + std::to_string(threads);
          at::Tensor x = at::randn({n, cols}, gen);
          at::Tensor xd = x.to(at::kDouble);
          at::Tensor y = quant_matmul(m, x);
          ASSERT_EQ(y.sizes(), (std::vector<int64_t>{n, rows}));
          expect_close_to_reference(y, at::mm(xd, wd.t()), at::mm(xd.abs(), wd.abs().t()), kTol, what);
          at::Tensor g = at::randn({n, rows}, gen);
          at::Tensor gd = g.to(at::kDouble);
          at::Tensor gx = quant_matmul_transposed(m, g);
          ASSERT_EQ(gx.sizes(), (std::vector<int64_t>{n, cols}));
          expect_close_to_reference(gx, at::mm(gd, wd), at::mm(gd.abs(), wd.abs()), kTol, what + " transposed");
        }
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
  expect_close_to_reference(quant_matmul(m, x), at::mm(xd, wd.t()), at::mm(xd.abs(), wd.abs().t()), kTol, "matmul");
  expect_close_to_reference(quant_matmul_transposed(m, g), at::mm(gd, wd), at::mm(gd.abs(), wd.abs()), kTol, "transposed");
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
