// DP-SGD on adapter gradients: clip every example's whole gradient (all parameters together)
// to norm C, sum, add Gaussian noise of std σ·C from a seeded generator, and average.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace hearth::privacy {

struct DpSgdConfig {
  double clip_norm = 1.0;         // C
  double noise_multiplier = 1.0;  // σ: the noise std is σ·C
};

// Per-example gradients: one tensor per parameter, each shaped [batch, ...parameter shape].
using PerExampleGrads = std::vector<at::Tensor>;

// The L2 norm of each example's gradient over all parameters, [batch], in float64.
at::Tensor per_example_norms(const PerExampleGrads& grads);

// Scales each example's gradient (across all parameters) so its norm is at most C:
// factor min(1, C / (norm + 1e-6)). In place; returns the factors, [batch].
at::Tensor clip_per_example_(PerExampleGrads& grads, double clip_norm);

// The private gradient of one step: clip, sum over the batch, add N(0, (σC)²) to every
// coordinate, divide by `expected_batch_size` (the sampling rate × dataset size under Poisson
// sampling, so the batch size itself leaks nothing). Returns one tensor per parameter.
std::vector<at::Tensor> privatize_gradients(PerExampleGrads grads, const DpSgdConfig& config,
                                            int64_t expected_batch_size, at::Generator& generator);

}  // namespace hearth::privacy
