#include "trainer/gradient_sync.h"

#include "core/error.h"

namespace hearth::trainer {

GradientSync::GradientSync(ProcessGroup& group, const std::vector<std::pair<std::string, at::Tensor>>& params, bool overlap,
                           size_t bucket_bytes)
    : group_(group), params_(params), overlap_(overlap) {
  // Backward produces the last layers' gradients first: buckets are filled from the end, so the
  // first bucket to complete is the first to go out.
  where_.resize(params_.size());
  copied_.assign(params_.size(), false);
  Bucket current;
  int64_t elements = 0;
  auto close = [&] {
    if (current.members.empty()) return;
    current.flat = at::zeros({elements}, at::kFloat);
    buckets_.push_back(std::move(current));
    current = Bucket{};
    elements = 0;
  };
  for (size_t i = params_.size(); i-- > 0;) {
    const at::Tensor& p = params_[i].second;
    require(p.scalar_type() == at::kFloat, ErrorCode::kInternal, "data-parallel gradients must be fp32");
    where_[i] = {buckets_.size(), current.members.size()};
    current.members.push_back(i);
    current.offsets.push_back(elements);
    elements += p.numel();
    if (size_t(elements) * sizeof(float) >= bucket_bytes) close();
  }
  close();
  if (!overlap_) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    // The hook sees the gradient of this backward call before it is added to .grad.
    hooks_.push_back(params_[i].second.register_hook([this, i](const at::Tensor& grad) {
      if (!armed_) return;
      const at::Tensor& p = params_[i].second;
      copy_in(i, p.grad().defined() ? p.grad() + grad : grad);
      Bucket& b = buckets_[where_[i].first];
      if (++b.ready == int64_t(b.members.size())) {
        start(b);
        ++overlapped_;
      }
    }));
  }
}

GradientSync::~GradientSync() {
  for (size_t i = 0; i < hooks_.size(); ++i) params_[i].second.remove_hook(hooks_[i]);
}

void GradientSync::copy_in(size_t param, const at::Tensor& grad) {
  const auto [bucket, slot] = where_[param];
  Bucket& b = buckets_[bucket];
  b.flat.narrow(0, b.offsets[slot], grad.numel()).copy_(grad.reshape({-1}));
  copied_[param] = true;
}

void GradientSync::start(Bucket& b) { b.pending = group_.allreduce_sum_async(b.flat, "the gradient all-reduce"); }

void GradientSync::arm() {
  armed_ = true;
  overlapped_ = 0;
  copied_.assign(params_.size(), false);
  for (Bucket& b : buckets_) {
    b.ready = 0;
    b.pending = PendingCollective();
  }
}

void GradientSync::finish() {
  armed_ = false;
  for (Bucket& b : buckets_) {
    if (b.pending.valid()) continue;
    for (size_t m = 0; m < b.members.size(); ++m) {
      const size_t i = b.members[m];
      if (copied_[i]) continue;
      const at::Tensor& g = params_[i].second.grad();
      // A parameter backward did not reach contributes zeros (its bucket slot was cleared).
      if (g.defined()) {
        copy_in(i, g);
      } else {
        b.flat.narrow(0, b.offsets[m], params_[i].second.numel()).zero_();
      }
    }
    start(b);
  }
  for (Bucket& b : buckets_) b.pending.wait();
  for (Bucket& b : buckets_) {
    for (size_t m = 0; m < b.members.size(); ++m) {
      const at::Tensor& p = params_[b.members[m]].second;
      at::Tensor summed = b.flat.narrow(0, b.offsets[m], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(summed);
      } else {
        p.mutable_grad() = summed.clone();
      }
    }
  }
}

}  // namespace hearth::trainer
