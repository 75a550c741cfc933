// What LoRA and DoRA layers share: the low-rank pair A [r, in], B [out, r] with its scale,
// and dropout on the adapter input while the adapter is training.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "inference/linear.h"
#include "inference/linear_adapter.h"

namespace hearth {

// State every layer of one adapter shares: whether it trains (dropout on) and the seeded
// generator the dropout masks are drawn from (part of a trainer's checkpoint).
struct AdapterRuntime {
  std::atomic<bool> training{false};
  double dropout = 0.0;
  at::Generator generator;
  std::mutex generator_mutex;
};

class LowRankLayer : public LinearAdapter {
 public:
  // a: [r, in], b: [out, r], fp32 leaves (they become trainable parameters).
  LowRankLayer(at::Tensor a, at::Tensor b, double scale, std::shared_ptr<AdapterRuntime> runtime);

  const at::Tensor& lora_A() const { return a_; }
  const at::Tensor& lora_B() const { return b_; }
  double scale() const { return scale_; }
  int64_t in_features() const { return a_.size(1); }
  int64_t out_features() const { return b_.size(0); }
  // DoRA's magnitude vector [out]; undefined for LoRA.
  virtual const at::Tensor& magnitude() const { return none_; }
  // The merged weight [out, in] fp32 this layer makes of `base` (for merging and checks).
  virtual at::Tensor merged_weight(const Linear& base) const = 0;
  // Bytes of the copies the prepared decode step reads instead of the parameters (LoRA's fp16
  // factors, made at its first decode): memory budgets count them with the parameters.
  virtual size_t decode_copy_bytes() const { return 0; }
  // Without autograd: out [rows, out] (fp32, contiguous) += strength * (this layer's update of
  // x [rows, in]) exactly as the prepared decode step adds it to each row, and true; false (and
  // nothing done) for an update that step does not run (DoRA, dropout).
  virtual bool add_update_as_decode_step(const at::Tensor& /*x*/, const at::Tensor& /*out*/, double /*strength*/) const {
    return false;
  }

 protected:
  // x with dropout applied when training with dropout > 0, else x itself.
  at::Tensor dropped(const at::Tensor& x) const;
  bool dropout_active() const;
  // s * (x A^T) B^T
  at::Tensor scaled_update(const at::Tensor& x) const;

  at::Tensor a_, b_;
  double scale_;
  std::shared_ptr<AdapterRuntime> runtime_;

 private:
  at::Tensor none_;
};

}  // namespace hearth
