#include "trainer/tail_average.h"

#include <cmath>

#include "core/error.h"

namespace hearth::trainer {

TailAverage::TailAverage(int64_t steps, double share)
    : first_(steps - static_cast<int64_t>(std::llround(share * static_cast<double>(steps)))), steps_(steps) {
  require(share >= 0 && share <= 1, ErrorCode::kInvalidArgument, "the averaged share of the updates must be between 0 and 1");
}

void TailAverage::after_update(int64_t step, const std::vector<at::Tensor>& params) {
  if (step < first_ || step >= steps_) return;
  at::NoGradGuard no_grad;
  if (sums_.empty()) {
    for (const at::Tensor& p : params) sums_.push_back(p.detach().to(at::kFloat, /*non_blocking=*/false, /*copy=*/true));
  } else {
    for (size_t i = 0; i < params.size(); ++i) sums_[i].add_(params[i].detach());
  }
  ++added_;
}

void TailAverage::apply(const std::vector<at::Tensor>& params) {
  if (added_ == 0) return;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(sums_[i].div_(static_cast<double>(added_)));
  sums_.clear();
  added_ = 0;
}

}  // namespace hearth::trainer
