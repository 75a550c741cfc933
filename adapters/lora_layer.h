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
  // out fp16 copies of the factors for the decode step, made again after any change to them.
  bool low_rank_update(LowRankUpdate& out) const override;
  // Through the fp16 images and the decode step's kernels (add_low_rank_rows).
  bool add_update_as_decode_step(const at::Tensor& x, const at::Tensor& out, double strength) const override;
  // The fp16 A and B (B's outputs padded to whole tiles): 2 bytes per factor element.
  size_t decode_copy_bytes() const override {
    return size_t(a_.numel() + low_rank_b_tiled_rows(b_.size(0)) * b_.size(1)) * 2;
  }

 private:
  struct Fp16Factor {
    at::Tensor scaled;  // fp16 of the factor * 2^k
    float unscale = 1;  // 2^-k
    int64_t version = -1;
  };
  mutable std::mutex fp16_mu_;
  mutable Fp16Factor a16_, b16_;  // A [rank, in]; B in column tiles (LowRankUpdate)
};

}  // namespace hearth
