#include "inference/rope.h"

#include <cmath>
#include <vector>

namespace hearth {

Rope::Rope(const ModelConfig& config, double theta)
    : rotary_dims_(config.rotary_dim()), attention_factor_(config.rope_attention_factor()), interleaved_(config.rope_interleaved) {
  const int64_t half = rotary_dims_ / 2;
  std::vector<float> inv(half);
  const auto& rs = config.rope_scaling;
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(theta, double(2 * i) / double(rotary_dims_));
    if (config.long_rope.enabled) {
      // Phi-3 longrope within the trained context: the short factors (ModelConfig::context_length).
      f /= config.long_rope.short_factor[i];
    } else if (!config.rope_freq_factors.empty()) {
      f /= config.rope_freq_factors[i];
    } else if (rs.enabled) {
      // Llama 3: keep high frequencies, divide low ones by `factor`, blend in between.
      const double wavelen = 2.0 * M_PI / f;
      const double low_wavelen = rs.original_max_position_embeddings / rs.low_freq_factor;
      const double high_wavelen = rs.original_max_position_embeddings / rs.high_freq_factor;
      if (wavelen > low_wavelen) {
        f = f / rs.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) /
                              (rs.high_freq_factor - rs.low_freq_factor);
        f = (1.0 - smooth) * f / rs.factor + smooth * f;
      }
    }
    inv[i] = static_cast<float>(f);
  }
  inv_freq_ = at::tensor(inv, at::kFloat);
}

std::pair<at::Tensor, at::Tensor> Rope::angles(const at::Tensor& positions) const {
  at::Tensor a = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;
  if (attention_factor_ == 1.0) return {a.cos(), a.sin()};
  const float scale = static_cast<float>(attention_factor_);
  return {a.cos() * scale, a.sin() * scale};
}

at::Tensor Rope::apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) const {
  if (rotary_dims_ < x.size(-1)) {
    const int64_t rest = x.size(-1) - rotary_dims_;
    return at::cat({apply(x.narrow(-1, 0, rotary_dims_), cos, sin), x.narrow(-1, rotary_dims_, rest)}, -1);
  }
  // cos/sin [B, T, half] -> [B, 1, T, half] to broadcast over heads.
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  const int64_t half = x.size(-1) / 2;
  if (interleaved_) {
    at::Tensor pairs = x.unflatten(-1, {half, 2});
    at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
    return at::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).flatten(-2);
  }
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

}  // namespace hearth
