#include "optim/adamw.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace hearth {
namespace optim {

void validate(const AdamSettings& s) {
  require(s.beta1 >= 0.0 && s.beta1 < 1.0, ErrorCode::kInvalidArgument, "beta1 = " + std::to_string(s.beta1) + " must be in [0, 1)");
  require(s.beta2 >= 0.0 && s.beta2 < 1.0, ErrorCode::kInvalidArgument, "beta2 = " + std::to_string(s.beta2) + " must be in [0, 1)");
  require(s.eps >= 0.0, ErrorCode::kInvalidArgument, "eps = " + std::to_string(s.eps) + " must not be negative");
}

void adamw_update(const at::Tensor& param, const at::Tensor& grad, ParamState& state, const AdamSettings& s, double lr,
                  double weight_decay) {
  at::NoGradGuard no_grad;
  if (!state.exp_avg.defined()) {
    state.exp_avg = at::zeros_like(param, at::MemoryFormat::Contiguous);
    state.exp_avg_sq = at::zeros_like(param, at::MemoryFormat::Contiguous);
  }
  state.step += 1;
  const double t = static_cast<double>(state.step);
  // torch multiplies unconditionally; by 1.0 that is the identity, so skip the pass.
  if (weight_decay != 0.0) param.mul_(1.0 - lr * weight_decay);
  state.exp_avg.mul_(s.beta1).add_(grad, 1.0 - s.beta1);
  state.exp_avg_sq.mul_(s.beta2).addcmul_(grad, grad, 1.0 - s.beta2);
  const double bias_correction1 = 1.0 - std::pow(s.beta1, t);
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(s.beta2, t));
  at::Tensor denom = state.exp_avg_sq.sqrt();
  denom.div_(bias_correction2_sqrt).add_(s.eps);
  param.addcdiv_(state.exp_avg, denom, -lr / bias_correction1);
}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamSettings settings, double default_lr, double default_weight_decay)
    : Optimizer(std::move(groups), default_lr, default_weight_decay), settings_(settings) {
  validate(settings_);
}

void AdamW::step() {
  for (size_t i = 0; i < num_params(); ++i) {
    const at::Tensor& p = param(i);
    if (!p.grad().defined()) continue;
    const size_t g = group_of(i);
    adamw_update(p, p.grad(), mutable_state(i), settings_, lr(g), weight_decay(g));
  }
}

std::string AdamW::describe() const {
  std::ostringstream out;
  out << "adamw (betas " << settings_.beta1 << ", " << settings_.beta2 << "; eps " << settings_.eps << "; " << num_params()
      << " parameters in " << groups().size() << " groups)";
  return out.str();
}

std::map<std::string, std::string> AdamW::state_settings() const {
  // Betas and eps shape the moments; a resume with others would not replay the same run.
  std::ostringstream b1, b2, eps;
  b1.precision(17), b2.precision(17), eps.precision(17);
  b1 << settings_.beta1, b2 << settings_.beta2, eps << settings_.eps;
  return {{"beta1", b1.str()}, {"beta2", b2.str()}, {"eps", eps.str()}};
}

}  // namespace optim
}  // namespace hearth
