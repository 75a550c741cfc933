// APOLLO and APOLLO-Mini against an independent double-precision implementation of the
// paper's Algorithm 1 (fed the optimizer's own projections), and bitwise resume.
#include "optim/apollo.h"

#include <gtest/gtest.h>

#include "optim_test_support.h"

namespace hearth {
namespace optim {
namespace {

using namespace testing;

// A row-major matrix of doubles.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double& operator()(int64_t i, int64_t j) { return v[i * cols + j]; }
  double operator()(int64_t i, int64_t j) const { return v[i * cols + j]; }
};

Mat to_mat(const at::Tensor& t) { return Mat{t.size(0), t.size(1), to_vector(t)}; }

// Algorithm 1 of APOLLO, with the details of the authors' code: moments of the projected
// gradient, bias correction as a step size, channel factors along the larger dimension,
// norm-growth limiter on the scaled gradient before alpha, decoupled decay after the update.
struct ReferenceApollo {
  double lr, weight_decay, beta1, beta2, eps, alpha, gamma;
  bool tensor_wise;
  Mat m, v;
  int64_t t = 0;
  double last_norm = -1.0;
  int limiter_fired = 0;

  void step(Mat& w, const Mat& g, const Mat& p) {
    const bool right = w.rows >= w.cols;  // R = G P^T, else R = P G
    const int64_t r = p.rows;
    Mat R{right ? w.rows : r, right ? r : w.cols, {}};
    R.v.assign(R.rows * R.cols, 0.0);
    for (int64_t i = 0; i < R.rows; ++i)
      for (int64_t j = 0; j < R.cols; ++j) {
        double s = 0.0;
        if (right) {
          for (int64_t k = 0; k < w.cols; ++k) s += g(i, k) * p(j, k);
        } else {
          for (int64_t k = 0; k < w.rows; ++k) s += p(i, k) * g(k, j);
        }
        R(i, j) = s;
      }
    if (m.v.empty()) m = Mat{R.rows, R.cols, std::vector<double>(R.v.size(), 0.0)}, v = m;
    ++t;
    Mat adam = R;
    for (size_t k = 0; k < R.v.size(); ++k) {
      m.v[k] = beta1 * m.v[k] + (1 - beta1) * R.v[k];
      v.v[k] = beta2 * v.v[k] + (1 - beta2) * R.v[k] * R.v[k];
      adam.v[k] = m.v[k] / (std::sqrt(v.v[k]) + eps);
    }
    // Scaling factor per channel of the unprojected dimension (rows of R if right, else columns).
    Mat scaled = g;
    if (tensor_wise) {
      double na = 0, nr = 0;
      for (size_t k = 0; k < R.v.size(); ++k) na += adam.v[k] * adam.v[k], nr += R.v[k] * R.v[k];
      const double s = std::sqrt(na) / (std::sqrt(nr) + 1e-8);
      for (auto& x : scaled.v) x *= s;
    } else {
      const int64_t channels = right ? w.rows : w.cols;
      for (int64_t c = 0; c < channels; ++c) {
        double na = 0, nr = 0;
        for (int64_t k = 0; k < r; ++k) {
          const double a = right ? adam(c, k) : adam(k, c);
          const double b = right ? R(c, k) : R(k, c);
          na += a * a, nr += b * b;
        }
        const double s = std::sqrt(na) / (std::sqrt(nr) + 1e-8);
        for (int64_t o = 0; o < (right ? w.cols : w.rows); ++o) (right ? scaled(c, o) : scaled(o, c)) *= s;
      }
    }
    double norm = 0;
    for (double x : scaled.v) norm += x * x;
    norm = std::sqrt(norm);
    if (last_norm >= 0) {
      const double ratio = norm / (last_norm + 1e-8);
      if (ratio > gamma) {
        ++limiter_fired;
        for (auto& x : scaled.v) x *= gamma / ratio;
        norm = norm * gamma / ratio;
      }
    }
    last_norm = norm;
    const double step_size = lr * std::sqrt(1 - std::pow(beta2, double(t))) / (1 - std::pow(beta1, double(t)));
    for (size_t k = 0; k < w.v.size(); ++k) w.v[k] -= step_size * alpha * scaled.v[k];
    for (auto& x : w.v) x -= lr * weight_decay * x;
  }
};

const std::vector<std::vector<int64_t>> kShapes = {{24, 10}, {10, 24}, {16, 16}, {12, 40}};

// Runs the optimizer and the reference side by side for 10 steps with update gap 4.
void check_against_reference(ApolloSettings s, at::ScalarType dtype, double tol) {
  s.update_gap = 4;
  s.seed = 77;
  std::vector<at::Tensor> params;
  for (size_t i = 0; i < kShapes.size(); ++i) params.push_back(make_param(kShapes[i], 10 + i, dtype));
  ParamGroup group;
  group.params = params;
  group.lr = 0.01;
  group.weight_decay = 0.05;
  Apollo opt({group}, s);
  std::vector<ReferenceApollo> ref;
  std::vector<Mat> w;
  for (const auto& p : params) {
    ref.push_back({0.01, 0.05, s.adam.beta1, s.adam.beta2, s.adam.eps, std::sqrt(s.scale), s.norm_growth_limit,
                   s.scaling == ApolloScaling::kTensor});
    w.push_back(to_mat(p));
  }
  for (int step = 0; step < 10; ++step) {
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor g = make_grad(params[i], 1000 + 10 * step + i, 1.0 + 0.3 * step);
      set_grad(params[i], g);
      ref[i].step(w[i], to_mat(g), to_mat(opt.projection_for(i, step)));
    }
    opt.step();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_LT(max_abs_diff(to_vector(params[i]), w[i].v), tol) << "shape [" << kShapes[i][0] << ", " << kShapes[i][1] << "] step " << step;
    }
  }
  for (size_t i = 0; i < params.size(); ++i) EXPECT_GT(ref[i].limiter_fired, 0) << "the limiter was never exercised";
}

ApolloSettings apollo_rank8() {
  ApolloSettings s;
  s.rank = 8;
  return s;
}

TEST(Apollo, MatchesAlgorithmOneInDouble) { check_against_reference(apollo_rank8(), at::kDouble, 1e-12); }
TEST(Apollo, MatchesAlgorithmOneInFloat) { check_against_reference(apollo_rank8(), at::kFloat, 2e-6); }
TEST(ApolloMini, MatchesAlgorithmOneInDouble) { check_against_reference(apollo_mini_settings(), at::kDouble, 1e-12); }
TEST(ApolloMini, MatchesAlgorithmOneInFloat) { check_against_reference(apollo_mini_settings(), at::kFloat, 2e-6); }

TEST(Apollo, ProjectionHasTheDocumentedShapeAndRefreshes) {
  ApolloSettings s = apollo_rank8();
  s.update_gap = 4;
  std::vector<at::Tensor> params;
  for (size_t i = 0; i < kShapes.size(); ++i) params.push_back(make_param(kShapes[i], 20 + i));
  params.push_back(make_param({6}, 30));     // not a matrix: AdamW
  params.push_back(make_param({3, 5}, 31));  // rank 8 clipped to 3 would hold more than AdamW: AdamW
  ParamGroup group;
  group.params = params;
  Apollo opt({group}, s);
  EXPECT_EQ(opt.projection_for(0, 0).sizes(), (at::IntArrayRef{8, 10}));  // tall: R = G P^T
  EXPECT_EQ(opt.projection_for(1, 0).sizes(), (at::IntArrayRef{8, 10}));  // wide: R = P G
  EXPECT_EQ(opt.projection_for(2, 0).sizes(), (at::IntArrayRef{8, 16}));
  EXPECT_EQ(opt.projection_for(3, 0).sizes(), (at::IntArrayRef{8, 12}));  // wide: P is [r, m]
  EXPECT_FALSE(opt.is_projected(4));
  EXPECT_FALSE(opt.is_projected(5));
  EXPECT_EQ(opt.rank(5), 0);
  EXPECT_TRUE(at::equal(opt.projection_for(0, 0), opt.projection_for(0, 3)));
  EXPECT_FALSE(at::equal(opt.projection_for(0, 3), opt.projection_for(0, 4)));
  EXPECT_FALSE(at::equal(opt.projection_for(0, 0), opt.projection_for(1, 0)));
  expect_error([&] { opt.projection_for(4, 0); }, ErrorCode::kInvalidArgument, "not a projected");
}

TEST(Apollo, ProjectionEntriesHaveVarianceOneOverRank) {
  ApolloSettings s;
  s.rank = 64;
  ParamGroup group;
  group.params = {make_param({4096, 512}, 40)};
  Apollo opt({group}, s);
  at::Tensor p = opt.projection_for(0, 0).to(at::kDouble);
  EXPECT_NEAR(p.mean().item<double>(), 0.0, 0.002);
  EXPECT_NEAR(p.pow(2).mean().item<double>(), 1.0 / 64, 0.03 / 64);
}

TEST(Apollo, NonMatrixParametersFollowAdamW) {
  at::Tensor bias = make_param({9}, 50, at::kDouble);
  ParamGroup group;
  group.params = {bias};
  group.lr = 0.02;
  group.weight_decay = 0.1;
  ApolloSettings s;
  Apollo opt({group}, s);
  ReferenceAdamW ref{0.02, 0.1, s.adam.beta1, s.adam.beta2, s.adam.eps};
  std::vector<double> w = to_vector(bias);
  for (int step = 0; step < 5; ++step) {
    at::Tensor g = make_grad(bias, 60 + step);
    set_grad(bias, g);
    ref.step(w, to_vector(g));
    opt.step();
  }
  EXPECT_LT(max_abs_diff(to_vector(bias), w), 1e-13);
}

TEST(Apollo, GroupWithoutLowRankUsesAdamWForMatrices) {
  ParamGroup embed, rest;
  embed.params = {make_param({32, 8}, 70)};
  embed.low_rank = false;
  rest.params = {make_param({32, 8}, 71)};
  rest.rank = 2;
  Apollo opt({embed, rest}, ApolloSettings{});
  EXPECT_FALSE(opt.is_projected(0));
  EXPECT_EQ(opt.rank(1), 2);
}

// Steps 10 times, or 6 times, saves, rebuilds and resumes for 4: parameters must agree bitwise.
// The save at step 6 falls inside the second projection window (steps 4-7, T = 4), so the
// resumed optimizer must regenerate that projection; the third refresh happens after resume.
void check_bitwise_resume(const std::function<std::unique_ptr<Optimizer>(std::vector<at::Tensor>)>& make, const std::string& name) {
  std::vector<at::Tensor> init;
  for (size_t i = 0; i < kShapes.size(); ++i) init.push_back(make_param(kShapes[i], 80 + i));
  init.push_back(make_param({11}, 90));
  auto grads_at = [&](int step, size_t i) { return make_grad(init[i], 5000 + 10 * step + i, 1.0 + 0.2 * step); };
  auto run = [&](std::vector<at::Tensor>& params, Optimizer& opt, int from, int to) {
    for (int step = from; step < to; ++step) {
      for (size_t i = 0; i < params.size(); ++i) {
        // The vector gets a gradient only on even steps: its step counter lags the matrices'.
        if (i + 1 == params.size() && step % 2 == 1) continue;
        set_grad(params[i], grads_at(step, i));
      }
      opt.step();
      opt.zero_grad();
    }
  };
  std::vector<at::Tensor> a;
  for (const auto& p : init) a.push_back(fresh_copy(p));
  auto opt_a = make(a);
  run(a, *opt_a, 0, 10);

  std::vector<at::Tensor> b;
  for (const auto& p : init) b.push_back(fresh_copy(p));
  auto opt_b = make(b);
  run(b, *opt_b, 0, 6);
  TempDir dir("resume_" + name);
  opt_b->save_state(dir.path() / "ckpt");
  std::vector<at::Tensor> c;
  for (const auto& p : b) c.push_back(fresh_copy(p));
  opt_b.reset();
  auto opt_c = make(c);
  opt_c->load_state(dir.path() / "ckpt");
  run(c, *opt_c, 6, 10);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].detach(), c[i].detach())) << name << " parameter " << i;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(opt_a->state(i).step, opt_c->state(i).step);
}

std::vector<ParamGroup> one_group(std::vector<at::Tensor> params) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = 0.01;
  g.weight_decay = 0.01;
  return {g};
}

TEST(Apollo, ResumeIsBitwiseIdenticalAcrossProjectionRefresh) {
  ApolloSettings s = apollo_rank8();
  s.update_gap = 4;
  s.seed = 5;
  check_bitwise_resume([&](std::vector<at::Tensor> p) { return std::make_unique<Apollo>(one_group(p), s); }, "apollo");
}

TEST(ApolloMini, ResumeIsBitwiseIdenticalAcrossProjectionRefresh) {
  ApolloSettings s = apollo_mini_settings();
  s.update_gap = 4;
  s.seed = 6;
  check_bitwise_resume([&](std::vector<at::Tensor> p) { return std::make_unique<Apollo>(one_group(p), s); }, "mini");
}

TEST(AdamW, ResumeIsBitwiseIdentical) {
  check_bitwise_resume([](std::vector<at::Tensor> p) { return std::make_unique<AdamW>(one_group(p), AdamSettings{}); }, "adamw");
}

}  // namespace
}  // namespace optim
}  // namespace hearth
