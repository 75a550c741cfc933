// Helpers shared by the quantization tests: fresh random seeds (logged so a failure can be
// replayed), random weights with varied row scales, and guards restoring global settings.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>

#include "core/rng.h"
#include "core/threads.h"
#include "inference/quant/quant_kernels.h"

namespace hearth::test {

// A new seed every run; tests print it with SCOPED_TRACE.
inline uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// Gaussian weights whose rows differ in scale by up to 100x, with a few outliers, like real
// linear layers.
inline at::Tensor random_weight(int64_t rows, int64_t cols, at::Generator& gen) {
  at::Tensor w = at::randn({rows, cols}, gen);
  at::Tensor row_scale = at::exp(at::rand({rows, 1}, gen) * 4.6 - 2.3);
  w = w * row_scale;
  at::Tensor outlier = at::rand({rows, cols}, gen) < 0.01;
  return at::where(outlier, w * 8.0, w);
}

// Restores the automatic kernel choice and the thread count when a test ends.
struct KernelGuard {
  ~KernelGuard() {
    force_kernel_isa(KernelIsa::kAuto);
    set_num_threads(0);
  }
};

inline std::vector<KernelIsa> supported_isas() {
  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kAvx512}) {
    if (cpu_supports_isa(isa)) isas.push_back(isa);
  }
  return isas;
}

}  // namespace hearth::test
