#include "adapters/dora_layer.h"

namespace hearth {

DoraLayer::DoraLayer(at::Tensor a, at::Tensor b, at::Tensor magnitude, double scale,
                     std::shared_ptr<AdapterRuntime> runtime)
    : LowRankLayer(std::move(a), std::move(b), scale, std::move(runtime)), magnitude_(std::move(magnitude)) {}

at::Tensor dora_row_norms(const Linear& base, const at::Tensor& a, const at::Tensor& b, double scale) {
  at::NoGradGuard no_grad;
  const at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  const at::Tensor wa = base.base_matmul(a.detach().contiguous()).t().to(at::kDouble);  // W A^T [out, r]
  const at::Tensor base_sq = base.weight_row_norms().to(at::kDouble).pow(2);
  const at::Tensor cross = (b64 * wa).sum(1);
  const at::Tensor low_rank_sq = (at::matmul(b64, at::matmul(a64, a64.t())) * b64).sum(1);
  // Cancellation can leave a tiny negative where W + sBA is (nearly) zero in a row.
  return (base_sq + 2 * scale * cross + scale * scale * low_rank_sq).clamp_min(0).sqrt().to(at::kFloat);
}

at::Tensor dora_row_norms_reference(const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b, double scale) {
  at::NoGradGuard no_grad;
  at::Tensor merged = weight.to(at::kDouble) + scale * at::matmul(b.to(at::kDouble), a.to(at::kDouble));
  return merged.pow(2).sum(1).sqrt();
}

at::Tensor DoraLayer::row_norms(const Linear& base) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  // An optimizer step changes A and B in place, which bumps their version counters.
  if (!cached_norms_.defined() || cached_base_ != &base || cached_a_version_ != a_._version() ||
      cached_b_version_ != b_._version()) {
    cached_norms_ = dora_row_norms(base, a_, b_, scale_);
    cached_a_version_ = a_._version();
    cached_b_version_ = b_._version();
    cached_base_ = &base;
  }
  return cached_norms_;
}

at::Tensor DoraLayer::apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const {
  const at::Tensor ratio = magnitude_ / row_norms(base);  // m / n, gradient to m only
  if (!dropout_active()) {
    at::Tensor wx = base.bias().defined() ? base_out - base.bias() : base_out;
    return base_out + (ratio - 1) * wx + ratio * scaled_update(x);
  }
  const at::Tensor xd = dropped(x);
  return base_out + (ratio - 1) * base.base_matmul(xd) + ratio * scaled_update(xd);
}

at::Tensor DoraLayer::merged_weight(const Linear& base) const {
  at::NoGradGuard no_grad;
  at::Tensor merged = base.weight_fp32() + at::matmul(b_, a_) * scale_;
  at::Tensor norms = merged.to(at::kDouble).pow(2).sum(1).sqrt().to(at::kFloat);
  return merged * (magnitude_ / norms).unsqueeze(1);
}

}  // namespace hearth
