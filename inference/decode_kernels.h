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

// Attention of one new position (batch 1) against every cached one: q [1, 1, heads, d] (rotated),
// keys / values [1, kv_heads, s, d] fp32 with unit stride along d (the cache's views), query head
// h reading KV head h / (heads / kv_heads). Softmax(q k^T / sqrt(d)) v, no mask (the new position
// sees all s). Returns [1, 1, heads * d]. Replaces ~10 ATen ops per layer in a decode step.
at::Tensor fused_decode_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values);

// silu(gate) * up for fp32 tensors of one shape, in one pass (the MLP's gating).
at::Tensor fused_silu_mul(const at::Tensor& gate, const at::Tensor& up);

}  // namespace hearth
