#include "inference/quant/quant_linear.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "inference/quant/quant_reference.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

// Forward and input gradient of quant_linear against dequantize-to-double then matmul.
TEST(QuantLinear, ForwardAndInputGradientMatchDoubleReference) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8}) {
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const int64_t rows = 45, cols = 150;
      auto m = std::make_shared<const QuantizedMatrix>(quantize_matrix(test::random_weight(rows, cols, gen), format));
      at::Tensor wd = reference_dequantize(*m);
      for (std::vector<int64_t> batch : {std::vector<int64_t>{1}, std::vector<int64_t>{2, 7}}) {
        std::vector<int64_t> in_shape = batch, out_shape = batch;
        in_shape.push_back(cols);
        out_shape.push_back(rows);
        at::Tensor x = at::randn(in_shape, gen).set_requires_grad(true);
        at::Tensor r = at::randn(out_shape, gen);
        at::Tensor y = quant_linear(x, m);
        ASSERT_EQ(y.sizes(), at::IntArrayRef(out_shape));
        ASSERT_TRUE(y.requires_grad());
        (y * r).sum().backward();
        ASSERT_TRUE(x.grad().defined());

        at::Tensor xd = x.detach().to(at::kDouble).reshape({-1, cols});
        at::Tensor rd = r.to(at::kDouble).reshape({-1, rows});
        at::Tensor y_ref = at::mm(xd, wd.t());
        at::Tensor g_ref = at::mm(rd, wd);
        const double y_err = (y.detach().to(at::kDouble).reshape({-1, rows}) - y_ref).norm().item<double>() / y_ref.norm().item<double>();
        const double g_err = (x.grad().to(at::kDouble).reshape({-1, cols}) - g_ref).norm().item<double>() / g_ref.norm().item<double>();
        EXPECT_LT(y_err, 1e-4) << quant_format_name(format);
        EXPECT_LT(g_err, 1e-4) << quant_format_name(format);
      }
    }
  }
}

TEST(QuantLinear, NoGraphWithoutGradAndRejectsWrongWidth) {
  auto m = std::make_shared<const QuantizedMatrix>(quantize_matrix(at::randn({6, 20}), QuantFormat::kNF4));
  at::Tensor y = quant_linear(at::randn({3, 20}), m);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(quant_linear(at::randn({3, 21}), m), Error);
  EXPECT_THROW(quant_linear(at::randn({3, 20}), nullptr), Error);
}

TEST(QuantLinear, GradientFlowsThroughToEarlierLayers) {
  // A trainable tensor before the quantized layer receives its gradient through it.
  auto m = std::make_shared<const QuantizedMatrix>(quantize_matrix(at::randn({8, 16}), QuantFormat::kInt8));
  at::Tensor a = at::randn({16}).set_requires_grad(true);
  at::Tensor x = at::randn({4, 16}) * a;
  quant_linear(x, m).sum().backward();
  ASSERT_TRUE(a.grad().defined());
  at::Tensor wd = dequantize_matrix(*m);
  at::Tensor expected = (at::ones({4, 8}).mm(wd) * x.detach() / a.detach()).sum(0);
  EXPECT_TRUE(at::allclose(a.grad(), expected, 1e-4, 1e-4));
}

}  // namespace
}  // namespace hearth
