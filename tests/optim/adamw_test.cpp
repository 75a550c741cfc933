// AdamW against a plain double-precision loop, and the behaviour of the shared interface.
#include "optim/adamw.h"

#include <gtest/gtest.h>

#include "optim_test_support.h"

namespace hearth {
namespace optim {
namespace {

using namespace testing;

TEST(AdamW, MatchesDoubleReferenceForTenSteps) {
  std::vector<at::Tensor> params = {make_param({7, 5}, 1, at::kDouble), make_param({13}, 2, at::kDouble)};
  ParamGroup g;
  g.params = params;
  g.lr = 0.01;
  g.weight_decay = 0.1;
  AdamW opt({g}, AdamSettings{0.9, 0.999, 1e-8});
  std::vector<ReferenceAdamW> ref(2, ReferenceAdamW{0.01, 0.1, 0.9, 0.999, 1e-8});
  std::vector<std::vector<double>> w = {to_vector(params[0]), to_vector(params[1])};
  for (int step = 0; step < 10; ++step) {
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor grad = make_grad(params[i], 100 + step * 10 + i, 1.0 + step);
      set_grad(params[i], grad);
      ref[i].step(w[i], to_vector(grad));
    }
    opt.step();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_LT(max_abs_diff(to_vector(params[i]), w[i]), 1e-13) << "param " << i << " step " << step;
    }
  }
  EXPECT_EQ(opt.state(0).step, 10u);
}

TEST(AdamW, Float32StaysCloseToDoubleReference) {
  at::Tensor p = make_param({64, 32}, 3);
  ParamGroup g;
  g.params = {p};
  g.lr = 1e-3;
  g.weight_decay = 0.01;
  AdamW opt({g}, AdamSettings{});
  ReferenceAdamW ref{1e-3, 0.01, 0.9, 0.999, 1e-8};
  std::vector<double> w = to_vector(p);
  for (int step = 0; step < 10; ++step) {
    at::Tensor grad = make_grad(p, 200 + step);
    set_grad(p, grad);
    ref.step(w, to_vector(grad));
    opt.step();
  }
  EXPECT_LT(max_abs_diff(to_vector(p), w), 5e-6);  // ~10 float ulps at |w| ~ 4
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  at::Tensor a = make_param({4}, 4), b = make_param({4}, 5);
  ParamGroup g;
  g.params = {a, b};
  g.weight_decay = 0.5;  // decay must not touch a parameter that is skipped
  AdamW opt({g}, AdamSettings{});
  const at::Tensor b_before = b.detach().clone();
  set_grad(a, make_grad(a, 6));
  opt.step();
  EXPECT_TRUE(at::equal(b.detach(), b_before));
  EXPECT_EQ(opt.state(0).step, 1u);
  EXPECT_EQ(opt.state(1).step, 0u);
  EXPECT_FALSE(opt.state(1).exp_avg.defined());
}

TEST(AdamW, ZeroGradDropsGradients) {
  at::Tensor a = make_param({3, 3}, 7);
  ParamGroup g;
  g.params = {a};
  AdamW opt({g}, AdamSettings{});
  set_grad(a, make_grad(a, 8));
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(AdamW, SetLrChangesTheStep) {
  at::Tensor a = make_param({5}, 9, at::kDouble), b = make_param({5}, 10, at::kDouble);
  ParamGroup ga, gb;
  ga.params = {a};
  gb.params = {b};
  AdamW opt({ga, gb}, AdamSettings{}, /*default_lr=*/0.5);
  EXPECT_EQ(opt.lr(0), 0.5);
  opt.set_lr(1, 0.0);
  const at::Tensor b_before = b.detach().clone();
  set_grad(a, make_grad(a, 11));
  set_grad(b, make_grad(b, 12));
  opt.step();
  EXPECT_TRUE(at::equal(b.detach(), b_before));  // lr 0 and no decay: unchanged
  opt.set_lr(0.25);
  EXPECT_EQ(opt.lr(0), 0.25);
  EXPECT_EQ(opt.lr(1), 0.25);
  expect_error([&] { opt.set_lr(-1.0); }, ErrorCode::kInvalidArgument, "negative");
  expect_error([&] { opt.set_lr(2, 0.1); }, ErrorCode::kInvalidArgument, "group 2");
}

TEST(AdamW, RejectsParametersThatCannotBeTrained) {
  at::Tensor frozen = at::randn({3});
  ParamGroup g;
  g.params = {frozen};
  expect_error([&] { AdamW({g}, AdamSettings{}); }, ErrorCode::kInvalidArgument, "requires_grad");
  at::Tensor p = make_param({3}, 13);
  g.params = {p, p};
  expect_error([&] { AdamW({g}, AdamSettings{}); }, ErrorCode::kInvalidArgument, "more than once");
  g.params = {p};
  expect_error([&] { AdamW({g}, AdamSettings{1.0, 0.999, 1e-8}); }, ErrorCode::kInvalidArgument, "beta1");
}

}  // namespace
}  // namespace optim
}  // namespace hearth
