// DoRA: the adapted weight is m ⊙ (W + s B A) / ||W + s B A||_row, the norm taken over the input
// dimension of every output row and treated as a constant (detached), as the DoRA paper and PEFT do.
#pragma once
#include <mutex>

#include "adapters/low_rank_layer.h"

namespace hearth {

class DoraLayer : public LowRankLayer {
 public:
  // magnitude: [out] fp32 leaf.
  DoraLayer(at::Tensor a, at::Tensor b, at::Tensor magnitude, double scale, std::shared_ptr<AdapterRuntime> runtime);

  // PEFT's forward: base_out + (m/n - 1) W x' + (m/n) s B A x', x' = dropout(x); without
  // dropout W x' is base_out minus the bias, so the base is not run twice.
  at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const override;
  at::Tensor merged_weight(const Linear& base) const override;
  const at::Tensor& magnitude() const override { return magnitude_; }

  // ||W + s B A||_row, fp32 [out], without a gradient; cached until A or B change in place.
  at::Tensor row_norms(const Linear& base) const;

 private:
  at::Tensor magnitude_;
  mutable std::mutex cache_mutex_;
  mutable at::Tensor cached_norms_;
  mutable int64_t cached_a_version_ = -1, cached_b_version_ = -1;
  mutable const Linear* cached_base_ = nullptr;
};

// ||W + s B A||_row without forming W: ||W_i||^2 + 2s (B ⊙ W A^T)_i. + s^2 (B (A A^T) ⊙ B)_i.,
// with W A^T from the base's own matmul (packed 4-bit weights stay packed). fp32 [out].
at::Tensor dora_row_norms(const Linear& base, const at::Tensor& a, const at::Tensor& b, double scale);
// The plain reference: forms W + s B A in double and takes its row norms.
at::Tensor dora_row_norms_reference(const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b, double scale);

}  // namespace hearth
