#include "adapters/lora_layer.h"

namespace hearth {

at::Tensor LoraLayer::apply(const at::Tensor& x, const at::Tensor& base_out, const Linear&) const {
  return base_out + scaled_update(dropped(x));
}

at::Tensor LoraLayer::merged_weight(const Linear& base) const {
  at::NoGradGuard no_grad;
  return base.weight_fp32() + at::matmul(b_, a_) * scale_;
}

}  // namespace hearth
