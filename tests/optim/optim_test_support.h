// Helpers shared by the optimizer tests: seeded parameters and gradients, a scratch folder,
// error expectations, and the plain double-precision AdamW reference.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace hearth {
namespace optim {
namespace testing {

inline at::Tensor make_param(std::vector<int64_t> shape, uint64_t seed, at::ScalarType dtype = at::kFloat) {
  at::Generator gen = make_generator(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(dtype).set_requires_grad(true);
}

inline at::Tensor make_grad(const at::Tensor& like, uint64_t seed, double magnitude = 1.0) {
  at::Generator gen = make_generator(seed);
  return (at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kFloat)) * magnitude).to(like.scalar_type());
}

inline void set_grad(const at::Tensor& p, const at::Tensor& g) { p.mutable_grad() = g.clone(); }

// A copy of `p` that is a fresh trainable leaf (for a second optimizer over equal values).
inline at::Tensor fresh_copy(const at::Tensor& p) { return p.detach().clone().set_requires_grad(true); }

// A scratch folder removed when the test ends.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("hearth_optim_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs `f`, expecting a hearth::Error of `code` whose message contains `fragment`.
template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

inline std::vector<double> to_vector(const at::Tensor& t) {
  at::Tensor d = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

// torch.optim.AdamW, written out element by element in double precision.
struct ReferenceAdamW {
  double lr, weight_decay, beta1, beta2, eps;
  std::vector<double> m, v;
  int64_t t = 0;

  void step(std::vector<double>& w, const std::vector<double>& g) {
    if (m.empty()) m.assign(w.size(), 0.0), v.assign(w.size(), 0.0);
    ++t;
    const double bc1 = 1.0 - std::pow(beta1, double(t));
    const double bc2 = 1.0 - std::pow(beta2, double(t));
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] *= 1.0 - lr * weight_decay;
      m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
      const double denom = std::sqrt(v[i]) / std::sqrt(bc2) + eps;
      w[i] -= lr / bc1 * m[i] / denom;
    }
  }
};

inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace testing
}  // namespace optim
}  // namespace hearth
