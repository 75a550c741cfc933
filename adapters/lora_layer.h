// LoRA: y = W x + b + s B A dropout(x), with the frozen base output passed in.
// The base is never touched; only A and B receive gradients.
#pragma once
#include "adapters/low_rank_layer.h"

namespace hearth {

class LoraLayer : public LowRankLayer {
 public:
  using LowRankLayer::LowRankLayer;
  // Without autograd (inference) it adds into base_out in place: Linear::forward's own tensor.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const override;
  // W + s B A
  at::Tensor merged_weight(const Linear& base) const override;
  // True unless training with dropout or the factors are not fp32 and contiguous.
  bool low_rank_update(LowRankUpdate& out) const override;
};

}  // namespace hearth
