// Rotary position embeddings: inverse frequencies (with Llama 3 or Phi-3 longrope scaling) and
// the rotation, in the half-split layout of Hugging Face checkpoints or the interleaved one of
// llama2.c, over all of each head or its first rotary_dims (Phi-3's partial rotary).
#pragma once
#include <ATen/ATen.h>

#include "inference/model_config.h"

namespace hearth {

class Rope {
 public:
  explicit Rope(const ModelConfig& config) : Rope(config, config.rope_theta) {}
  // With base `theta` instead of the config's (Gemma 3's local layers).
  Rope(const ModelConfig& config, double theta);
  // cos and sin for `positions` (int64, any shape): each [..., rotary_dims / 2], fp32, both
  // times the config's attention factor (longrope; 1 otherwise).
  std::pair<at::Tensor, at::Tensor> angles(const at::Tensor& positions) const;
  // Rotates x [B, heads, T, head_dim] by angles for positions [B, T]; dimensions past
  // rotary_dims pass through.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const;
  const at::Tensor& inverse_frequencies() const { return inv_freq_; }
  int64_t rotary_dims() const { return rotary_dims_; }
  double attention_factor() const { return attention_factor_; }

 private:
  at::Tensor inv_freq_;  // fp32 [rotary_dims / 2]
  int64_t rotary_dims_;
  double attention_factor_;
  bool interleaved_;
};

}  // namespace hearth
