// Tail averaging (Polyak-Ruppert): the mean of the parameters over the last updates of a run,
// used as its result. A run's last weights depend on which examples its last few updates
// happened to see; their mean over many updates much less so.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace hearth::trainer {

class TailAverage {
 public:
  // Averages the parameters after each of the last round(share × steps) of `steps` updates.
  TailAverage(int64_t steps, double share);

  // Call after update `step` (0-based) with the parameters it updated.
  void after_update(int64_t step, const std::vector<at::Tensor>& params);

  // Replaces the parameters by their mean over the averaged updates (nothing if none were).
  void apply(const std::vector<at::Tensor>& params);

  int64_t first_averaged_step() const { return first_; }

 private:
  int64_t first_, steps_;
  int64_t added_ = 0;
  std::vector<at::Tensor> sums_;  // fp32 sums: one more copy of the parameters while averaging
};

}  // namespace hearth::trainer
