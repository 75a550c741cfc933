// A fresh low-rank delta trained over a frozen adapter (test-time training on a user's adapter):
// training the user's own factors on a request's context undoes what they learned, so the
// delta gets factors of its own and the user's stay as they are. Both live in one adapter of
// rank r_u + r_d, which serves like any other LoRA or DoRA:
//   A = [A_u; A_d],  B = [(s_u / s_d) B_u, B_d],  scale s_d,
// so s_d B A = s_u B_u A_u + s_d B_d A_d. The delta starts as a fresh adapter does (A_d PEFT's
// initialization, B_d zero), so the stack starts out computing exactly the user's adapter.
#pragma once
#include <memory>
#include <vector>

#include "adapters/adapter.h"

namespace hearth {

class StackedDelta {
 public:
  // Stacks a fresh `delta` (its rank, alpha, targets and seed) over `under`: the result covers
  // every layer and the union of both adapters' projections (zeros where one of them has none),
  // has `under`'s method, and copies `under`'s tensors (it is never changed).
  StackedDelta(const Decoder& decoder, const Adapter& under, const AdapterConfig& delta);

  const std::shared_ptr<Adapter>& adapter() const { return adapter_; }
  // Zeroes the gradients of everything but the delta's own factors (the user's rows of A and
  // columns of B, DoRA magnitudes, and modules outside the delta's targets): call between
  // backward() and the optimizer step. With no weight decay, Adam then leaves them bitwise as
  // they were.
  void keep_base_frozen() const;

 private:
  struct Frozen {
    at::Tensor a, b, magnitude;
    bool whole = false;  // a module outside the delta's targets
  };
  std::shared_ptr<Adapter> adapter_;
  int64_t base_rank_ = 0;
  std::vector<Frozen> frozen_;
};

}  // namespace hearth
