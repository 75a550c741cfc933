#include "adapters/lora_layer.h"

namespace hearth {

at::Tensor LoraLayer::apply(const at::Tensor& x, const at::Tensor& base_out, const Linear&) const {
  if (!at::GradMode::is_enabled() && !dropout_active() && base_out.is_contiguous()) {
    // Inference: two BLAS calls, the second accumulating into the base output Linear::forward
    // just made (no graph needs it), instead of four operator calls and two temporaries.
    at::Tensor out2d = base_out.view({-1, base_out.size(-1)});
    out2d.addmm_(at::matmul(x.reshape({-1, x.size(-1)}), a_.t()), b_.t(), 1.0, scale_);
    return base_out;
  }
  return base_out + scaled_update(dropped(x));
}

bool LoraLayer::low_rank_update(LowRankUpdate& out) const {
  auto plain = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu(); };
  if (dropout_active() || !plain(a_) || !plain(b_)) return false;
  out = {a_.data_ptr<float>(), b_.data_ptr<float>(), a_.size(0), static_cast<float>(scale_)};
  return true;
}

at::Tensor LoraLayer::merged_weight(const Linear& base) const {
  at::NoGradGuard no_grad;
  return base.weight_fp32() + at::matmul(b_, a_) * scale_;
}

}  // namespace hearth
