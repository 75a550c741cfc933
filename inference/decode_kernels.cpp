#include "inference/decode_kernels.h"

#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "inference/quant/quant_kernels.h"

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
    for (int64_t r = r0; r < r1; ++r) rms_norm_row(px + r * n, pw, n, eps, po + r * n);
  });
  return out;
}

void rms_norm_row(const float* x, const float* weight, int64_t n, double eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * weight[i];
}

void rope_rows(float* x, int64_t heads, int64_t head_dim, int64_t rotary, const float* cos, const float* sin, bool interleaved) {
  const int64_t half = rotary / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* row = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
      const float x0 = row[a], x1 = row[b];
      row[a] = x0 * cos[i] - x1 * sin[i];
      row[b] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

namespace {

// e^x for |x| <= 88.3 (2^k then stays a normal float or zero) in plain float arithmetic the compiler vectorizes (libm's expf is one
// call per element and was 5% of a prompt's time): x = k ln2 + r with |r| <= ln2 / 2, ln2 split
// in two so k ln2 is exact, e^r by its Taylor series to r^6 (truncation < 0.35^7 / 5040 = 1.3e-7
// relative), and 2^k written straight into the exponent bits.
__attribute__((always_inline)) inline float exp_bounded(float x) {
  // Rounded to the nearest integer by adding and taking away 1.5 * 2^23 (floor is a libm call).
  constexpr float kRound = 12582912.0f;
  const float k = (x * 1.44269504f + kRound) - kRound;
  const float r = (x - k * 0.693145752f) - k * 1.42860677e-6f;
  const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f + r * (8.33333377e-3f + r * 1.38888892e-3f)))));
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  return p * two_k;
}

// exp_bounded's range: beyond it e^x is past float's normals.
constexpr float kExpRange = 88.3f;

// No trapping math (no FP exceptions are ever unmasked here): GCC then turns the loop's
// comparisons into selects and vectorizes it; the arithmetic is unchanged. Clang has no such
// attribute (and warns about it): its loops stay as written there.
#if defined(__GNUC__) && !defined(__clang__)
#define HEARTH_VECTORIZE_SELECTS __attribute__((optimize("no-trapping-math")))
#else
#define HEARTH_VECTORIZE_SELECTS
#endif

// 1 + e^-g for each gate: the sigmoid's denominator, e^-g clamped to exp_bounded's range.
__attribute__((always_inline)) HEARTH_VECTORIZE_SELECTS inline void silu_denominators(const float* gate, int64_t n, float* d) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    // std::max(-range, -g), then std::min(range, that), written out (under the optimize attribute
    // the std:: ones stay calls); a NaN gate takes the lower bound, so exp_bounded never sees it.
    const float m = -kExpRange < -g ? -g : -kExpRange;
    d[i] = 1.0f + exp_bounded(m < kExpRange ? m : kExpRange);
  }
}

// Below this gate silu(g) is under 87 e^-87 = 1.5e-36 in size and every path gives 0: there the
// denominator passes 2^126, where the vector paths' reciprocal estimate flushes to zero (the
// cutoff once sat at exp's range, -88.3, and paths disagreed between the two).
constexpr float kSiluZeroBelow = -87.0f;

// silu(g) * up = g / d * up from the denominators in out; for large gates e^-g is below float's
// normals and silu(g) is g itself.
inline float silu_mul_one(float g, float up, float d) { return g < kSiluZeroBelow ? 0.0f : g / d * up; }

__attribute__((always_inline)) HEARTH_VECTORIZE_SELECTS inline void silu_mul_body(const float* gate, const float* up, int64_t n, float* out) {
  silu_denominators(gate, n, out);
  for (int64_t i = 0; i < n; ++i) out[i] = silu_mul_one(gate[i], up[i], out[i]);
}

// The vector paths divide by the hardware's reciprocal estimate refined by one Newton step,
// r (2 - d r): a float division costs 16 cycles a vector and was most of silu's time, which was
// 8% of a prompt's (SmolLM2, AVX2). Estimate error 2^-14 (AVX-512) or 1.5 * 2^-12 (AVX2) becomes
// its square after the step, under 2.3e-7 relative with the rounding: within the kernel's 1e-6.
// The last partial vector is masked, not scalar: an element's result must not depend on where
// a call's range starts (fused_silu_mul splits a tensor anywhere; decode_plan_test checks bits).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) inline __m512 silu_mul_vector(__m512 g, __m512 up, __m512 d) {
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
  const __m512 y = _mm512_mul_ps(_mm512_mul_ps(g, r), up);
  // A NaN gate compares false and stays NaN.
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(g, _mm512_set1_ps(kSiluZeroBelow), _CMP_LT_OQ), _mm512_setzero_ps());
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) HEARTH_VECTORIZE_SELECTS void silu_mul_avx512(const float* gate, const float* up,
                                                                                    int64_t n, float* out) {
  silu_denominators(gate, n, out);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, silu_mul_vector(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i), _mm512_loadu_ps(out + i)));
  if (i == n) return;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  const __m512 y = silu_mul_vector(_mm512_maskz_loadu_ps(tail, gate + i), _mm512_maskz_loadu_ps(tail, up + i),
                                   _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), tail, out + i));
  _mm512_mask_storeu_ps(out + i, tail, y);
}

__attribute__((target("avx2,fma"))) inline __m256 silu_mul_vector(__m256 g, __m256 up, __m256 d) {
  __m256 r = _mm256_rcp_ps(d);
  r = _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
  const __m256 y = _mm256_mul_ps(_mm256_mul_ps(g, r), up);
  return _mm256_andnot_ps(_mm256_cmp_ps(g, _mm256_set1_ps(kSiluZeroBelow), _CMP_LT_OQ), y);
}
__attribute__((target("avx2,fma"))) HEARTH_VECTORIZE_SELECTS void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out) {
  silu_denominators(gate, n, out);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, silu_mul_vector(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i), _mm256_loadu_ps(out + i)));
  if (i == n) return;
  alignas(32) float g[8] = {}, u[8] = {}, d[8] = {1, 1, 1, 1, 1, 1, 1, 1}, y[8];
  std::copy_n(gate + i, n - i, g);
  std::copy_n(up + i, n - i, u);
  std::copy_n(out + i, n - i, d);
  _mm256_store_ps(y, silu_mul_vector(_mm256_load_ps(g), _mm256_load_ps(u), _mm256_load_ps(d)));
  std::copy_n(y, n - i, out + i);
}

HEARTH_VECTORIZE_SELECTS void silu_mul_portable(const float* gate, const float* up, int64_t n, float* out) { silu_mul_body(gate, up, n, out); }

using SiluMulFn = void (*)(const float*, const float*, int64_t, float*);
SiluMulFn silu_mul_for_cpu() {
  if (cpu_supports_isa(KernelIsa::kAvx512)) return silu_mul_avx512;
  if (cpu_supports_isa(KernelIsa::kAvx2)) return silu_mul_avx2;
  return silu_mul_portable;
}

}  // namespace

void silu_mul_row(const float* gate, const float* up, int64_t n, float* out) {
  static const SiluMulFn silu_mul = silu_mul_for_cpu();
  silu_mul(gate, up, n, out);
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

namespace {

// The body of attend_kv_head is compiled three times below (AVX-512, AVX2, plain x86-64) and
// picked through the quantized kernels' dispatch, so HEARTH_ISA caps it like every other fast
// path. Each ISA brings its q . k and its weighted sum of the values, in intrinsics: in plain C++
// GCC kept the lane sums and the output rows in memory, which was most of a prompt's attention.
// (No std:: helpers in the HEARTH_VECTORIZE_SELECTS bodies: under the optimize attribute they
// stay calls.)
//
// q . k over d: sixteen lane sums over the whole blocks of 16, added as a fixed tree (lane l with
// l + 8, then l + 4, l + 2, l + 1), then the last d % 16 products in order. Each output element
// of the values' sum runs over the keys in order. Neither order depends on which row, pass or
// batch computes it, so a row's attention is bitwise the same in a prompt and in a decode step.
inline float dot_tail(const float* q, const float* k, int64_t from, int64_t d, float total) {
  for (int64_t i = from; i < d; ++i) total += q[i] * k[i];
  return total;
}

// out elements [from, d) of query g: sum over the keys of p[g, j] v_j, in key order.
inline void weighted_values_from(const KvHeadAttention& a, const float* pg, float* og, int64_t from) {
  for (int64_t i = from; i < a.d; ++i) {
    float acc = 0;
    for (int64_t j = 0; j < a.s; ++j) acc += pg[j] * a.v[j * a.v_stride + i];
    og[i] = acc;
  }
}

struct PortableAttention {
  static float dot(const float* q, const float* k, int64_t d) {
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= d; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] += q[i + l] * k[i + l];
    for (int width = 8; width >= 1; width /= 2)
      for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
    return dot_tail(q, k, i, d, acc[0]);
  }
  // Key by key over whole rows (the same sums, in key order, as weighted_values_from).
  static void weighted_values(const KvHeadAttention& a) {
    for (int64_t i = 0; i < a.group * a.d; ++i) a.out[i] = 0.0f;
    for (int64_t j = 0; j < a.s; ++j) {
      const float* vj = a.v + j * a.v_stride;
      for (int64_t g = 0; g < a.group; ++g) {
        const float w = a.scores[g * a.s + j];
        float* og = a.out + g * a.d;
        for (int64_t i = 0; i < a.d; ++i) og[i] += w * vj[i];
      }
    }
  }
};

__attribute__((target("avx2,fma"))) inline float tree_sum(__m256 low, __m256 high) {
  const __m256 t8 = _mm256_add_ps(low, high);
  const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
  const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
  return _mm_cvtss_f32(_mm_add_ss(t2, _mm_shuffle_ps(t2, t2, 1)));
}

struct Avx2Attention {
  __attribute__((target("avx2,fma"))) static float dot(const float* q, const float* k, int64_t d) {
    __m256 low = _mm256_setzero_ps(), high = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
      low = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), low);
      high = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), _mm256_loadu_ps(k + i + 8), high);
    }
    return dot_tail(q, k, i, d, i > 0 ? tree_sum(low, high) : 0.0f);
  }
  // 32 output elements in registers across all the keys, then 8, then one at a time.
  __attribute__((target("avx2,fma"))) static void weighted_values(const KvHeadAttention& a) {
    for (int64_t g = 0; g < a.group; ++g) {
      const float* pg = a.scores + g * a.s;
      float* og = a.out + g * a.d;
      int64_t i = 0;
      for (; i + 32 <= a.d; i += 32) {
        __m256 y0 = _mm256_setzero_ps(), y1 = y0, y2 = y0, y3 = y0;
        for (int64_t j = 0; j < a.s; ++j) {
          const __m256 w = _mm256_broadcast_ss(pg + j);
          const float* vj = a.v + j * a.v_stride + i;
          y0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj), y0);
          y1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8), y1);
          y2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 16), y2);
          y3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 24), y3);
        }
        _mm256_storeu_ps(og + i, y0);
        _mm256_storeu_ps(og + i + 8, y1);
        _mm256_storeu_ps(og + i + 16, y2);
        _mm256_storeu_ps(og + i + 24, y3);
      }
      for (; i + 8 <= a.d; i += 8) {
        __m256 y = _mm256_setzero_ps();
        for (int64_t j = 0; j < a.s; ++j) y = _mm256_fmadd_ps(_mm256_broadcast_ss(pg + j), _mm256_loadu_ps(a.v + j * a.v_stride + i), y);
        _mm256_storeu_ps(og + i, y);
      }
      weighted_values_from(a, pg, og, i);
    }
  }
};

struct Avx512Attention {
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) static float dot(const float* q, const float* k, int64_t d) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), acc);
    return dot_tail(q, k, i, d, i > 0 ? tree_sum(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)) : 0.0f);
  }
  // 64 output elements in registers across all the keys, then 16, then one at a time.
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) static void weighted_values(const KvHeadAttention& a) {
    for (int64_t g = 0; g < a.group; ++g) {
      const float* pg = a.scores + g * a.s;
      float* og = a.out + g * a.d;
      int64_t i = 0;
      for (; i + 64 <= a.d; i += 64) {
        __m512 y0 = _mm512_setzero_ps(), y1 = y0, y2 = y0, y3 = y0;
        for (int64_t j = 0; j < a.s; ++j) {
          const __m512 w = _mm512_set1_ps(pg[j]);
          const float* vj = a.v + j * a.v_stride + i;
          y0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj), y0);
          y1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 16), y1);
          y2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 32), y2);
          y3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 48), y3);
        }
        _mm512_storeu_ps(og + i, y0);
        _mm512_storeu_ps(og + i + 16, y1);
        _mm512_storeu_ps(og + i + 32, y2);
        _mm512_storeu_ps(og + i + 48, y3);
      }
      for (; i + 16 <= a.d; i += 16) {
        __m512 y = _mm512_setzero_ps();
        for (int64_t j = 0; j < a.s; ++j) y = _mm512_fmadd_ps(_mm512_set1_ps(pg[j]), _mm512_loadu_ps(a.v + j * a.v_stride + i), y);
        _mm512_storeu_ps(og + i, y);
      }
      weighted_values_from(a, pg, og, i);
    }
  }
};

template <typename Isa>
__attribute__((always_inline)) HEARTH_VECTORIZE_SELECTS inline void attend_kv_head_body(const KvHeadAttention& a) {
  const int64_t s = a.s, d = a.d, group = a.group;
  float* p = a.scores;
  for (int64_t j = 0; j < s; ++j) {
    const float* kj = a.k + j * a.k_stride;
    for (int64_t g = 0; g < group; ++g) p[g * s + j] = Isa::dot(a.q + g * d, kj, d) * a.scale;
  }
  for (int64_t g = 0; g < group; ++g) {
    float* pg = p + g * s;
    float top = pg[0];
    for (int64_t j = 1; j < s; ++j) top = top < pg[j] ? pg[j] : top;
    // exp_bounded vectorizes (libm's expf, one call per score, made a prompt's attention, whose
    // rows see up to all the keys each, cost more than its products); below -88.3 the weight
    // is under float's normals and taken as 0.
    for (int64_t j = 0; j < s; ++j) {
      const float z = pg[j] - top;
      const float e = exp_bounded(-kExpRange < z ? z : -kExpRange);  // a NaN stays in range
      pg[j] = z < -kExpRange ? 0.0f : e;                     // a select, so the loop vectorizes
    }
    double sum = 0;
    for (int64_t j = 0; j < s; ++j) sum += pg[j];
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < s; ++j) pg[j] *= inv;
  }
  Isa::weighted_values(a);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c"))) HEARTH_VECTORIZE_SELECTS void attend_kv_head_avx512(const KvHeadAttention& a) {
  attend_kv_head_body<Avx512Attention>(a);
}
__attribute__((target("avx2,fma,f16c"))) HEARTH_VECTORIZE_SELECTS void attend_kv_head_avx2(const KvHeadAttention& a) {
  attend_kv_head_body<Avx2Attention>(a);
}
HEARTH_VECTORIZE_SELECTS void attend_kv_head_portable(const KvHeadAttention& a) { attend_kv_head_body<PortableAttention>(a); }

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their undefined pass-through vectors
// once the fp16 kernels below inline them (a known false positive); popped after them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// y[r] = alpha * dot(m[r, :], x) (+ y[r] when accumulate) over fp16 rows, widened in registers
// (F16C on both fast paths).
struct DenseRowsFp16 {
  const uint16_t* m;
  int64_t cols;
  const float* x;
  int64_t r0, r1;
  float alpha;
  bool accumulate;
  float* y;
};

__attribute__((target("avx512f,f16c"), always_inline)) inline __m512 fp16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Four rows at a time: one row's chain of fused adds waits on its own latency, four keep the FMA
// units busy. Each row still sums in the same order, so its result does not depend on its
// neighbours.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c"))) void dense_rows_fp16_avx512(const DenseRowsFp16& a) {
  constexpr int64_t kRows = 4;
  int64_t r = a.r0;
  for (; r < a.r1; r += kRows) {
    const int64_t n = std::min(kRows, a.r1 - r);
    const uint16_t* row[kRows];
    for (int64_t k = 0; k < kRows; ++k) row[k] = a.m + (r + std::min(k, n - 1)) * a.cols;  // past the end: the last row again
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 16 <= a.cols; i += 16) {
      const __m512 xv = _mm512_loadu_ps(a.x + i);
      acc0 = _mm512_fmadd_ps(fp16x16(row[0] + i), xv, acc0);
      acc1 = _mm512_fmadd_ps(fp16x16(row[1] + i), xv, acc1);
      acc2 = _mm512_fmadd_ps(fp16x16(row[2] + i), xv, acc2);
      acc3 = _mm512_fmadd_ps(fp16x16(row[3] + i), xv, acc3);
    }
    const __m512 acc[kRows] = {acc0, acc1, acc2, acc3};
    for (int64_t k = 0; k < n; ++k) {
      float total = _mm512_reduce_add_ps(acc[k]);
      for (int64_t j = i; j < a.cols; ++j) total += _cvtsh_ss(row[k][j]) * a.x[j];
      a.y[r + k] = a.alpha * total + (a.accumulate ? a.y[r + k] : 0.0f);
    }
  }
}

// One row's sum over two chains of fused adds per iteration (cols 0-7 and 8-15 of each 16);
// two rows at a time keep four chains in flight. Each row sums in its own fixed order.
__attribute__((target("avx2,fma,f16c"))) inline float dense_row_fp16_total_avx2(__m256 acc0, __m256 acc1, const uint16_t* row,
                                                                              const float* x, int64_t i, int64_t cols) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(acc0, acc1));
  float total = 0;
  for (float l : lanes) total += l;
  for (; i < cols; ++i) total += _cvtsh_ss(row[i]) * x[i];
  return total;
}

__attribute__((target("avx2,fma,f16c"))) void dense_rows_fp16_avx2(const DenseRowsFp16& a) {
  for (int64_t r = a.r0; r < a.r1; r += 2) {
    const bool pair = r + 1 < a.r1;
    const uint16_t* row0 = a.m + r * a.cols;
    const uint16_t* row1 = pair ? row0 + a.cols : row0;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 16 <= a.cols; i += 16) {
      const __m256 x0 = _mm256_loadu_ps(a.x + i), x1 = _mm256_loadu_ps(a.x + i + 8);
      acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row0 + i))), x0, acc[0]);
      acc[1] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row0 + i + 8))), x1, acc[1]);
      acc[2] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row1 + i))), x0, acc[2]);
      acc[3] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row1 + i + 8))), x1, acc[3]);
    }
    a.y[r] = a.alpha * dense_row_fp16_total_avx2(acc[0], acc[1], row0, a.x, i, a.cols) + (a.accumulate ? a.y[r] : 0.0f);
    if (pair)
      a.y[r + 1] = a.alpha * dense_row_fp16_total_avx2(acc[2], acc[3], row1, a.x, i, a.cols) + (a.accumulate ? a.y[r + 1] : 0.0f);
  }
}

void dense_rows_fp16_portable(const DenseRowsFp16& a) {
  for (int64_t r = a.r0; r < a.r1; ++r) {
    const uint16_t* row = a.m + r * a.cols;
    float total = 0;
    for (int64_t i = 0; i < a.cols; ++i) total += c10::detail::fp16_ieee_to_fp32_value(row[i]) * a.x[i];
    a.y[r] = a.alpha * total + (a.accumulate ? a.y[r] : 0.0f);
  }
}

struct DenseColsFp16 {
  const uint16_t* tiles;  // b_tiles_fp16 layout
  int64_t rank;
  const float* u;
  int64_t r0, r1;
  float alpha;
  float* y;
};

// Row r's factor j in the column tiles.
inline int64_t b_tile_index(int64_t r, int64_t j, int64_t rank) {
  return ((r / kLowRankTileRows) * rank + j) * kLowRankTileRows + r % kLowRankTileRows;
}

// Rows [r, end) one at a time: those before the first whole vector and after the last. Each row
// rounds as a vector lane does (fused multiply-adds in the same order), so a row's result does
// not depend on where a range starts or ends: the decode step's chunks and a whole prompt's rows
// agree bitwise.
__attribute__((target("fma,f16c"), always_inline)) inline void dense_cols_fp16_rows(const DenseColsFp16& a, int64_t r,
                                                                                   int64_t end) {
  for (; r < end; ++r) {
    float total = 0;
    for (int64_t j = 0; j < a.rank; ++j) total = std::fma(_cvtsh_ss(a.tiles[b_tile_index(r, j, a.rank)]), a.u[j], total);
    a.y[r] = std::fma(total, a.alpha, a.y[r]);
  }
}

// Between the scalar rows: four vectors of outputs at a time (four chains of fused adds in
// flight over the rank, each reading a contiguous run of its tile), then one.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c"))) void dense_cols_fp16_avx512(const DenseColsFp16& a) {
  constexpr int64_t kLanes = 16;
  const int64_t first = std::min(a.r1, (a.r0 + kLanes - 1) / kLanes * kLanes);
  dense_cols_fp16_rows(a, a.r0, first);
  int64_t r = first;
  for (; r + kLanes <= a.r1;) {
    const int kVectors = r + 4 * kLanes <= a.r1 ? 4 : 1;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t j = 0; j < a.rank; ++j) {
      const __m512 u = _mm512_set1_ps(a.u[j]);
      for (int k = 0; k < kVectors; ++k)
        acc[k] = _mm512_fmadd_ps(fp16x16(a.tiles + b_tile_index(r + k * kLanes, j, a.rank)), u, acc[k]);
    }
    for (int k = 0; k < kVectors; ++k, r += kLanes)
      _mm512_storeu_ps(a.y + r, _mm512_fmadd_ps(acc[k], _mm512_set1_ps(a.alpha), _mm512_loadu_ps(a.y + r)));
  }
  dense_cols_fp16_rows(a, r, a.r1);
}

__attribute__((target("avx2,fma,f16c"))) void dense_cols_fp16_avx2(const DenseColsFp16& a) {
  constexpr int64_t kLanes = 8;
  const int64_t first = std::min(a.r1, (a.r0 + kLanes - 1) / kLanes * kLanes);
  dense_cols_fp16_rows(a, a.r0, first);
  int64_t r = first;
  for (; r + kLanes <= a.r1;) {
    const int kVectors = r + 4 * kLanes <= a.r1 ? 4 : 1;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t j = 0; j < a.rank; ++j) {
      const __m256 u = _mm256_set1_ps(a.u[j]);
      for (int k = 0; k < kVectors; ++k) {
        const uint16_t* w = a.tiles + b_tile_index(r + k * kLanes, j, a.rank);
        acc[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))), u, acc[k]);
      }
    }
    for (int k = 0; k < kVectors; ++k, r += kLanes)
      _mm256_storeu_ps(a.y + r, _mm256_fmadd_ps(acc[k], _mm256_set1_ps(a.alpha), _mm256_loadu_ps(a.y + r)));
  }
  dense_cols_fp16_rows(a, r, a.r1);
}

void dense_cols_fp16_portable(const DenseColsFp16& a) {
  for (int64_t r = a.r0; r < a.r1; ++r) {
    float total = 0;
    for (int64_t j = 0; j < a.rank; ++j) total += c10::detail::fp16_ieee_to_fp32_value(a.tiles[b_tile_index(r, j, a.rank)]) * a.u[j];
    a.y[r] += a.alpha * total;
  }
}

#pragma GCC diagnostic pop

using DenseColsFp16Fn = void (*)(const DenseColsFp16&);
DenseColsFp16Fn dense_cols_fp16_for_cpu() {
  if (cpu_supports_isa(KernelIsa::kAvx512)) return dense_cols_fp16_avx512;
  if (cpu_supports_isa(KernelIsa::kAvx2)) return dense_cols_fp16_avx2;
  return dense_cols_fp16_portable;
}

using DenseRowsFp16Fn = void (*)(const DenseRowsFp16&);
DenseRowsFp16Fn dense_rows_fp16_for_cpu() {
  if (cpu_supports_isa(KernelIsa::kAvx512)) return dense_rows_fp16_avx512;
  if (cpu_supports_isa(KernelIsa::kAvx2)) return dense_rows_fp16_avx2;
  return dense_rows_fp16_portable;
}

using AttendFn = void (*)(const KvHeadAttention&);
AttendFn attend_kv_head_for_cpu() {
  if (cpu_supports_isa(KernelIsa::kAvx512)) return attend_kv_head_avx512;
  if (cpu_supports_isa(KernelIsa::kAvx2)) return attend_kv_head_avx2;
  return attend_kv_head_portable;
}

}  // namespace

void attend_kv_head(const KvHeadAttention& a) {
  static const AttendFn attend = attend_kv_head_for_cpu();
  attend(a);
}

void dense_rows_fp16(const uint16_t* m, int64_t cols, const float* x, int64_t r0, int64_t r1, float alpha, bool accumulate,
                     float* y) {
  static const DenseRowsFp16Fn rows = dense_rows_fp16_for_cpu();
  rows({m, cols, x, r0, r1, alpha, accumulate, y});
}

void dense_cols_fp16(const uint16_t* b_tiles, int64_t rank, const float* u, int64_t r0, int64_t r1, float alpha, float* y) {
  static const DenseColsFp16Fn cols = dense_cols_fp16_for_cpu();
  cols({b_tiles, rank, u, r0, r1, alpha, y});
}

void prefetch_low_rank_b(const LowRankUpdate& u, int64_t r0, int64_t r1) {
  if (u.rank == 0 || r1 <= r0) return;
  // Whole tiles from the one holding r0 to the one holding r1 - 1, each rank x 16 fp16 values.
  const int64_t tile_halves = u.rank * kLowRankTileRows;
  const char* begin = reinterpret_cast<const char*>(u.b_tiles_fp16 + (r0 / kLowRankTileRows) * tile_halves);
  const char* end = reinterpret_cast<const char*>(u.b_tiles_fp16 + ((r1 - 1) / kLowRankTileRows + 1) * tile_halves);
  for (const char* p = begin; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T1);
}

at::Tensor low_rank_b_tiles_fp16(const at::Tensor& b, double multiplier) {
  require(b.dim() == 2, ErrorCode::kInternal, "low_rank_b_tiles_fp16: expected B [out, rank]");
  const int64_t out = b.size(0), rank = b.size(1), rows = low_rank_b_tiled_rows(out);
  at::Tensor padded = at::zeros({rows, rank}, b.options().dtype(at::kFloat));
  padded.narrow(0, 0, out).copy_(b);
  padded.mul_(multiplier);
  return padded.view({rows / kLowRankTileRows, kLowRankTileRows, rank}).permute({0, 2, 1}).to(at::kHalf).contiguous();
}

void add_low_rank_rows(const LowRankUpdate& u, const float* x, int64_t in, float* y, int64_t out, int64_t rows) {
  if (u.rank == 0 || rows <= 0) return;
  const float alpha = u.scale * u.b_fp16_scale;  // as the decode step forms it
  // Rows are independent, so any split over threads gives the same bits.
  at::parallel_for(0, rows, kLowRankRowsPerTask, [&](int64_t r0, int64_t r1) {
    std::vector<float> ax(u.rank);
    for (int64_t r = r0; r < r1; ++r) {
      dense_rows_fp16(u.a_fp16, in, x + r * in, 0, u.rank, u.a_fp16_scale, false, ax.data());
      dense_cols_fp16(u.b_tiles_fp16, u.rank, ax.data(), 0, out, alpha, y + r * out);
    }
  });
}

at::Tensor fused_decode_attention(const at::Tensor& q_in, const at::Tensor& keys, const at::Tensor& values) {
  require(q_in.dim() == 4 && q_in.size(0) == 1 && keys.dim() == 4 && keys.size(0) == 1 && keys.sizes() == values.sizes() &&
              keys.stride(3) == 1 && values.stride(3) == 1 && keys.size(3) == q_in.size(3) &&
              q_in.size(2) % keys.size(1) == 0 && q_in.size(1) >= 1 && q_in.size(1) <= keys.size(2),
          ErrorCode::kInternal, "fused_decode_attention: expected q [1, T, H, D], keys / values [1, KVH, S >= T, D]");
  const int64_t t = q_in.size(1), heads = q_in.size(2), d = q_in.size(3), kv_heads = keys.size(1), s = keys.size(2);
  const int64_t group = heads / kv_heads, past = s - t;
  const at::Tensor q = q_in.contiguous();
  at::Tensor out = at::empty({1, t, heads * d}, at::kFloat);
  const float* pq = q.data_ptr<float>();
  const float* pk = keys.data_ptr<float>();
  const float* pv = values.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float scale = static_cast<float>(1.0 / std::sqrt(double(d)));
  // Tasks are (row, KV head) pairs: each reads its KV head's keys and values once for all the
  // query heads that share them. A short context stays on the caller's thread.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, s * d * group));
  at::parallel_for(0, t * kv_heads, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> p(group * s);  // scores, then weights, of the group's query heads
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t row = i / kv_heads, kvh = i % kv_heads, offset = row * heads * d + kvh * group * d;
      attend_kv_head({pq + offset, pk + kvh * keys.stride(1), keys.stride(2), pv + kvh * values.stride(1), values.stride(2),
                      past + row + 1, d, group, scale, p.data(), po + offset});
    }
  });
  return out;
}

at::Tensor fused_silu_mul(const at::Tensor& gate_in, const at::Tensor& up_in) {
  require(gate_in.sizes() == up_in.sizes(), ErrorCode::kInternal, "fused_silu_mul: shapes differ");
  const at::Tensor gate = gate_in.contiguous(), up = up_in.contiguous();
  at::Tensor out = at::empty_like(gate);
  const float* pg = gate.data_ptr<float>();
  const float* pu = up.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, gate.numel(), int64_t(1) << 15, [&](int64_t i0, int64_t i1) {
    silu_mul_row(pg + i0, pu + i0, i1 - i0, po + i0);
  });
  return out;
}

}  // namespace hearth
