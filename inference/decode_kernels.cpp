#include "inference/decode_kernels.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "core/error.h"

namespace hearth {

bool can_fuse_for_inference(const at::Tensor& x, const at::Tensor& w) {
  return !x.requires_grad() && !w.requires_grad() && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
         x.device().is_cpu();
}

at::Tensor fused_rms_norm(const at::Tensor& x_in, const at::Tensor& weight_in, double eps) {
  const int64_t n = x_in.size(-1);
  require(weight_in.numel() == n, ErrorCode::kInternal, "fused_rms_norm: weight size mismatch");
  const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
  at::Tensor out = at::empty_like(x);
  const float* px = x.data_ptr<float>();
  const float* pw = weight.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const int64_t rows = n > 0 ? x.numel() / n : 0;
  // Rows are independent; one decode step has a single row, so this stays on the caller's thread.
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = px + r * n;
      float* orow = po + r * n;
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * xr[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(n) + eps));
      for (int64_t i = 0; i < n; ++i) orow[i] = xr[i] * inv * pw[i];
    }
  });
  return out;
}

at::Tensor fused_rope(const at::Tensor& x_in, const at::Tensor& cos_in, const at::Tensor& sin_in, bool interleaved) {
  require(x_in.dim() == 4 && cos_in.dim() == 3, ErrorCode::kInternal, "fused_rope: expected x [B, T, H, D], cos [B, T, D/2]");
  const int64_t B = x_in.size(0), T = x_in.size(1), H = x_in.size(2), D = x_in.size(3), half = D / 2;
  const at::Tensor x = x_in.contiguous();
  const at::Tensor c = cos_in.expand({B, T, half}).contiguous(), s = sin_in.expand({B, T, half}).contiguous();
  at::Tensor out = at::empty({B, T, H, D}, at::kFloat);
  const float* px = x.data_ptr<float>();
  const float* pc = c.data_ptr<float>();
  const float* ps = s.data_ptr<float>();
  float* po = out.data_ptr<float>();
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const float* cr = pc + bt * half;
    const float* sr = ps + bt * half;
    for (int64_t h = 0; h < H; ++h) {
      const float* xr = px + (bt * H + h) * D;
      float* orow = po + (bt * H + h) * D;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = xr[a], x1 = xr[b];
        orow[a] = x0 * cr[i] - x1 * sr[i];
        orow[b] = x0 * sr[i] + x1 * cr[i];
      }
    }
  }
  return out;
}

}  // namespace hearth
