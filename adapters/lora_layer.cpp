#include "adapters/lora_layer.h"

#include <c10/core/InferenceMode.h>

#include <cmath>

#include "inference/decode_kernels.h"

namespace hearth {

at::Tensor LoraLayer::apply(const at::Tensor& x, const at::Tensor& base_out, const Linear&) const {
  if (!at::GradMode::is_enabled() && !dropout_active() && base_out.is_contiguous()) {
    // Without autograd it adds into the base output Linear::forward just made (no graph needs
    // it). Generation (inference mode) takes the decode step's fp16 images and kernels, so a
    // prompt's rows and its decode steps compute the update alike; otherwise (a checkpointed
    // block's first pass, which its recomputation must match) two BLAS calls.
    if (c10::InferenceMode::is_enabled() && add_update_as_decode_step(x, base_out, 1.0)) return base_out;
    at::Tensor out2d = base_out.view({-1, base_out.size(-1)});
    out2d.addmm_(at::matmul(x.reshape({-1, x.size(-1)}), a_.t()), b_.t(), 1.0, scale_);
    return base_out;
  }
  return base_out + scaled_update(dropped(x));
}

bool LoraLayer::add_update_as_decode_step(const at::Tensor& x, const at::Tensor& out, double strength) const {
  LowRankUpdate u;
  if (out.scalar_type() != at::kFloat || !out.is_contiguous() || !low_rank_update(u)) return false;
  u.scale *= static_cast<float>(strength);  // as the router hands a routed row's update to the decode step
  const at::Tensor x2 = x.reshape({-1, x.size(-1)}).to(at::kFloat).contiguous();
  add_low_rank_rows(u, x2.data_ptr<float>(), x2.size(1), out.data_ptr<float>(), out.size(-1), x2.size(0));
  return true;
}

namespace {

// Makes `copy` the fp16 image of `factor` (B: in the decode step's column tiles) again if
// `factor` changed since (its version counter).
template <typename Copy>
void refresh_fp16(const at::Tensor& factor, bool b_tiles, Copy& copy) {
  const int64_t version = factor.is_inference() ? 0 : int64_t(factor._version());
  if (copy.version == version && copy.scaled.defined()) return;
  at::NoGradGuard no_grad;
  const at::Tensor f = factor.detach();
  const float largest = f.abs().max().item<float>();
  // 2^k * largest lands in [2^14, 2^15): below fp16's 65504.
  const int k = largest > 0 ? 14 - std::ilogb(largest) : 0;
  copy.scaled = b_tiles ? low_rank_b_tiles_fp16(f, std::ldexp(1.0, k)) : (f * std::ldexp(1.0, k)).to(at::kHalf).contiguous();
  copy.unscale = static_cast<float>(std::ldexp(1.0, -k));
  copy.version = version;
}

}  // namespace

bool LoraLayer::low_rank_update(LowRankUpdate& out) const {
  auto plain = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu(); };
  if (dropout_active() || !plain(a_) || !plain(b_)) return false;
  out.rank = a_.size(0);
  out.scale = static_cast<float>(scale_);
  // Decoding reads every factor once per token: in fp16 that is half the bytes, which is most of
  // an adapter's cost there (rank 16 on all 7 projections of qwen2.5-0.5b: 35 MB a token in
  // fp32). Each factor is scaled by a power of two (exact) so its largest value sits near fp16's
  // top: no overflow, and values down to 2^-28 of the largest keep 11 bits.
  std::lock_guard<std::mutex> lock(fp16_mu_);
  refresh_fp16(a_, /*b_tiles=*/false, a16_);
  refresh_fp16(b_, /*b_tiles=*/true, b16_);
  out.a_fp16 = reinterpret_cast<const uint16_t*>(a16_.scaled.data_ptr<at::Half>());
  out.b_tiles_fp16 = reinterpret_cast<const uint16_t*>(b16_.scaled.data_ptr<at::Half>());
  out.a_fp16_scale = a16_.unscale;
  out.b_fp16_scale = b16_.unscale;
  return true;
}

at::Tensor LoraLayer::merged_weight(const Linear& base) const {
  at::NoGradGuard no_grad;
  return base.weight_fp32() + at::matmul(b_, a_) * scale_;
}

}  // namespace hearth
