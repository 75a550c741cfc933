// What calibration learns about a linear layer's input: the Gram matrix H = XᵀX / tokens (the
// Hessian of the layer's squared output error, used by GPTQ, AWQ and the sensitivity measure)
// and the mean magnitude of each channel (AWQ's scales), in memory independent of the tokens.
#pragma once
#include <ATen/ATen.h>

#include <memory>

#include "inference/linear_adapter.h"

namespace hearth {

class InputStats {
 public:
  explicit InputStats(int64_t channels);
  // Adds the rows of x [..., channels].
  void add(const at::Tensor& x);
  int64_t tokens() const { return tokens_; }
  int64_t channels() const { return gram_.size(0); }
  at::Tensor hessian() const;   // double [channels, channels]
  at::Tensor mean_abs() const;  // double [channels]

 private:
  at::Tensor gram_;     // double, sum of x xᵀ
  at::Tensor abs_sum_;  // double, sum of |x|
  int64_t tokens_ = 0;
};

// An adapter that only watches: adds its layer's input to `stats` and returns the base output
// unchanged (the decoder's adapter slot is where a layer's input is visible).
class StatsProbe : public LinearAdapter {
 public:
  explicit StatsProbe(std::shared_ptr<InputStats> stats) : stats_(std::move(stats)) {}
  at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const override;

 private:
  std::shared_ptr<InputStats> stats_;
};

}  // namespace hearth
