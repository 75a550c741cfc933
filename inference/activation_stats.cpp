#include "inference/activation_stats.h"

#include "core/error.h"

namespace hearth {

// Rows per float product before it is added to the double sums: float sums of this many
// terms lose about 1e-6 relative, far below what the statistics are used for.
constexpr int64_t kRowsPerProduct = 2048;

InputStats::InputStats(int64_t channels)
    : gram_(at::zeros({channels, channels}, at::kDouble)), abs_sum_(at::zeros({channels}, at::kDouble)) {}

void InputStats::add(const at::Tensor& x_in) {
  require(x_in.size(-1) == channels(), ErrorCode::kInternal, "InputStats: input of the wrong width");
  const at::Tensor x = x_in.detach().reshape({-1, channels()}).to(at::kFloat);
  for (int64_t r = 0; r < x.size(0); r += kRowsPerProduct) {
    const at::Tensor part = x.narrow(0, r, std::min(kRowsPerProduct, x.size(0) - r));
    gram_.add_(at::mm(part.t(), part).to(at::kDouble));
    abs_sum_.add_(part.abs().sum(0).to(at::kDouble));
  }
  tokens_ += x.size(0);
}

at::Tensor InputStats::hessian() const { return gram_ / static_cast<double>(std::max<int64_t>(1, tokens_)); }

at::Tensor InputStats::mean_abs() const { return abs_sum_ / static_cast<double>(std::max<int64_t>(1, tokens_)); }

at::Tensor StatsProbe::apply(const at::Tensor& x, const at::Tensor& base_out, const Linear&) const {
  stats_->add(x);
  return base_out;
}

}  // namespace hearth
