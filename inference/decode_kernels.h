// Fused loops for the decoder's per-token path (RMSNorm, rotary rotation) used when no
// gradient is needed: one pass instead of the 6-11 small ATen ops of the reference expressions.
#pragma once
#include <ATen/ATen.h>

namespace hearth {

// True when x and w need no gradient and are fp32, so the fused loops below may replace the
// differentiable ATen expressions.
bool can_fuse_for_inference(const at::Tensor& x, const at::Tensor& w);

// x * rsqrt(mean(x^2, -1) + eps) * weight for fp32 x [..., n] and weight [n]; sums in double.
at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotates x [B, T, heads, head_dim] (fp32, any strides) by cos/sin [B, T, head_dim / 2]:
// half-split pairs (i, i + half) or, if interleaved, adjacent pairs (2i, 2i + 1). Returns a new
// contiguous [B, T, heads, head_dim] tensor.
at::Tensor fused_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool interleaved);

}  // namespace hearth
