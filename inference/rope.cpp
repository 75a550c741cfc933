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
  // One element at a time with the C library's cos and sin: ATen's vectorized ones round
  // differently from its scalar ones, which it uses for a tensor's last few elements, so a
  // position's angles depended on how many positions came with it. Per element, a prompt's row
  // rotates exactly as a decode step at its position does (the prepared step computes them so).
  const at::Tensor p = positions.to(at::kLong).contiguous();
  const int64_t n = p.numel(), half = inv_freq_.numel();
  std::vector<int64_t> shape = p.sizes().vec();
  shape.push_back(half);
  at::Tensor cos = at::empty(shape, at::kFloat), sin = at::empty(shape, at::kFloat);
  const int64_t* pp = p.data_ptr<int64_t>();
  const float* inv = inv_freq_.data_ptr<float>();
  float* pc = cos.data_ptr<float>();
  float* ps = sin.data_ptr<float>();
  const float scale = static_cast<float>(attention_factor_);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < half; ++j) {
      const float angle = static_cast<float>(pp[i]) * inv[j];
      pc[i * half + j] = std::cos(angle) * scale;
      ps[i * half + j] = std::sin(angle) * scale;
    }
  }
  return {cos, sin};
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
