// LoRA: y = W x + b + s B A dropout(x), with the frozen base output passed in.
// The base is never touched; only A and B receive gradients.
#pragma once
#include <mutex>

#include "adapters/low_rank_layer.h"

namespace hearth {

class LoraLayer : public LowRankLayer {
 public:
  using LowRankLayer::LowRankLayer;
  // Without autograd (inference) it adds into base_out in place: Linear::forward's own tensor.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const override;
  // W + s B A
  at::Tensor merged_weight(const Linear& base) const override;
  // True unless training with dropout or the factors are not fp32 and contiguous. Also hands
  // out int8 copies of the factors for the decode step, made again after any change to them.
  bool low_rank_update(LowRankUpdate& out) const override;
  // The int8 A and B^T with a float scale per row: a byte per factor element.
  size_t decode_copy_bytes() const override { return size_t(a_.numel() + b_.numel()) + size_t(a_.size(0)) * 8; }

 private:
  struct Int8Factor {
    at::Tensor codes;       // int8 [rank, n]
    at::Tensor row_scales;  // float [rank]: row j is row_scales[j] * codes[j, :]
    int64_t version = -1;
  };
  mutable std::mutex decode_copy_mu_;
  mutable Int8Factor a8_, bt8_;  // A [rank, in]; B transposed [rank, out]
};

}  // namespace hearth
