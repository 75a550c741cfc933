#include "adapters/low_rank_layer.h"

namespace hearth {

LowRankLayer::LowRankLayer(at::Tensor a, at::Tensor b, double scale, std::shared_ptr<AdapterRuntime> runtime)
    : a_(std::move(a)), b_(std::move(b)), scale_(scale), runtime_(std::move(runtime)) {}

bool LowRankLayer::dropout_active() const { return runtime_->training.load() && runtime_->dropout > 0; }

at::Tensor LowRankLayer::dropped(const at::Tensor& x) const {
  if (!dropout_active()) return x;
  const double keep = 1.0 - runtime_->dropout;
  at::Tensor mask = at::empty(x.sizes(), x.options().requires_grad(false));
  {
    // Masks come from the adapter's own seeded generator, so a replayed step drops the same units.
    std::lock_guard<std::mutex> lock(runtime_->generator_mutex);
    mask.bernoulli_(keep, runtime_->generator);
  }
  return x * mask.div_(keep);
}

at::Tensor LowRankLayer::scaled_update(const at::Tensor& x) const {
  return at::linear(at::linear(x, a_), b_) * scale_;
}

}  // namespace hearth
