// AdamW with decoupled weight decay and bias correction, step for step the same arithmetic
// as torch.optim.AdamW (decay first, then the Adam update with eps outside the sqrt).
#pragma once
#include "optim/optimizer.h"

namespace hearth {
namespace optim {

struct AdamSettings {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// Checks betas in [0, 1) and eps >= 0; throws kInvalidArgument otherwise.
void validate(const AdamSettings& s);

// One AdamW update of `param` from `grad` (same shape), creating the moments on first use and
// advancing state.step. Runs without autograd recording. Shared by AdamW and by APOLLO for
// its non-matrix parameters.
void adamw_update(const at::Tensor& param, const at::Tensor& grad, ParamState& state, const AdamSettings& s, double lr,
                  double weight_decay);

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamSettings settings, double default_lr = 1e-3, double default_weight_decay = 0.0);

  void step() override;
  std::string kind() const override { return "adamw"; }
  std::string describe() const override;

 protected:
  std::map<std::string, std::string> state_settings() const override;
  std::vector<int64_t> moment_shape(size_t index) const override { return param(index).sizes().vec(); }

 private:
  AdamSettings settings_;
};

}  // namespace optim
}  // namespace hearth
