// Fused loops for the decoder's per-token path (RMSNorm, rotary rotation) used when no
// gradient is needed: one pass instead of the 6-11 small ATen ops of the reference expressions.
#pragma once
#include <ATen/ATen.h>

#include "inference/linear_adapter.h"

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

// Attention of T new positions (batch 1), each as its own decode step: q [1, T, heads, d]
// (rotated), keys / values [1, kv_heads, S, d] fp32 with unit stride along d (the cache's views,
// the T new positions last), row i attending to the first S - T + i + 1 keys (causal), query
// head h reading KV head h / (heads / kv_heads). Softmax(q k^T / sqrt(d)) v. Returns
// [1, T, heads * d]. A prompt's row gets bitwise what a decode step at its position gets (the
// prepared step runs the same attend_kv_head), whatever the prompt's length or split.
at::Tensor fused_decode_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values);

// silu(gate) * up for fp32 tensors of one shape, in one pass (the MLP's gating).
at::Tensor fused_silu_mul(const at::Tensor& gate, const at::Tensor& up);

// The same loops over raw fp32 buffers, for the prepared decode step (decode_plan.h).
// out[i] = x[i] * rsqrt(mean(x^2) + eps) * weight[i]; the mean in double. out may alias x.
void rms_norm_row(const float* x, const float* weight, int64_t n, double eps, float* out);
// Rotates the first `rotary` floats of `heads` rows of head_dim floats in place by cos/sin
// [rotary / 2] (rotary == head_dim: whole heads; less: Phi-3's partial rotary).
void rope_rows(float* x, int64_t heads, int64_t head_dim, int64_t rotary, const float* cos, const float* sin, bool interleaved);
// out[i] = silu(gate[i]) * up[i].
void silu_mul_row(const float* gate, const float* up, int64_t n, float* out);

// One KV head's attention for the `group` query heads sharing it: q [group, d] (rotated) against
// s keys and values (row strides k_stride / v_stride floats); out [group, d] is overwritten;
// scores is a [group, s] scratch. The vector width follows cpu_supports_isa (HEARTH_ISA caps it).
struct KvHeadAttention {
  const float* q;
  const float* k;
  int64_t k_stride;
  const float* v;
  int64_t v_stride;
  int64_t s, d, group;
  float scale;
  float* scores;
  float* out;
};
void attend_kv_head(const KvHeadAttention& a);

// y[r] = alpha * dot(m[r, :], x) (+ y[r] when accumulate) for rows [r0, r1) of the row-major
// IEEE fp16 m [rows, cols], widened to fp32 in registers: an adapter's A x in the decode step.
void dense_rows_fp16(const uint16_t* m, int64_t cols, const float* x, int64_t r0, int64_t r1, float alpha, bool accumulate,
                     float* y);
// y[r] += alpha * sum_j u[j] * B[r, j] for r in [r0, r1), from B's fp16 column tiles (the
// LowRankUpdate::b_tiles_fp16 layout): an adapter's s B u, 16 (AVX-512) or 8 (AVX2) outputs per
// vector FMA chain. A row's result does not depend on the range it comes in.
void dense_cols_fp16(const uint16_t* b_tiles, int64_t rank, const float* u, int64_t r0, int64_t r1, float alpha, float* y);
// Asks for u's B factors of outputs [r0, r1) to be brought into L2 (they are contiguous).
void prefetch_low_rank_b(const LowRankUpdate& u, int64_t r0, int64_t r1);
// B [out, rank] (any float type) in the b_tiles_fp16 layout, as fp16 of B * multiplier.
at::Tensor low_rank_b_tiles_fp16(const at::Tensor& b, double multiplier);
// y[r, :] += scale * B (A x[r, :]) for rows r of x [rows, in] and y [rows, out], from the fp16
// images the prepared decode step reads, with its kernels in its order: a row gets bitwise what
// that step gives it, whether it comes in a prompt, a mixed batch or alone (so a served request
// answers as it does alone). Rows go to the threads kLowRankRowsPerTask at a time.
constexpr int64_t kLowRankRowsPerTask = 16;
void add_low_rank_rows(const LowRankUpdate& u, const float* x, int64_t in, float* y, int64_t out, int64_t rows);

}  // namespace hearth
