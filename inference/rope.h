// Rotary position embeddings: inverse frequencies (with Llama 3 scaling) and the rotation,
// in the half-split layout of Hugging Face checkpoints or the interleaved one of llama2.c.
#pragma once
#include <ATen/ATen.h>

#include "inference/model_config.h"

namespace hearth {

class Rope {
 public:
  explicit Rope(const ModelConfig& config) : Rope(config, config.rope_theta) {}
  // With base `theta` instead of the config's (Gemma 3's local layers).
  Rope(const ModelConfig& config, double theta);
  // cos and sin for `positions` (int64, any shape): each [..., head_dim / 2], fp32.
  std::pair<at::Tensor, at::Tensor> angles(const at::Tensor& positions) const;
  // Rotates x [B, heads, T, head_dim] by angles for positions [B, T].
  at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const;
  const at::Tensor& inverse_frequencies() const { return inv_freq_; }

 private:
  at::Tensor inv_freq_;  // fp32 [head_dim / 2]
  bool interleaved_;
};

}  // namespace hearth
