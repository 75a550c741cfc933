// Helpers shared by the quantization tests: fresh random seeds (logged so a failure can be
// replayed), random weights with varied row scales, and guards restoring global settings.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>

#include "core/rng.h"
#include "core/threads.h"
#include "inference/quant/quant_kernels.h"
#include "inference/quant/quantized_matrix.h"

namespace hearth::test {

// A new seed every run; tests print it with SCOPED_TRACE, and HEARTH_TEST_SEED=<seed> replays it.
inline uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("HEARTH_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
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

inline at::Tensor as_tensor(const std::vector<double>& v) {
  return at::from_blob(const_cast<double*>(v.data()), {static_cast<int64_t>(v.size())}, at::kDouble).clone();
}

// |W| [rows, cols] for error bounds of the form tol * (|W| |x|). For nf4 it adds, divided by
// tol, what rebuilding a block's double-quantized absmax in float may move its weights by: code *
// scale + offset can cancel to almost nothing, so that error is unbounded relative to the absmax
// but a few ulps of its two parts (2^-22 (|code * scale| + |offset|), the code values being <= 1).
// Formats whose weights are scale * code - offset (Q4_1, Q4_K, Q5_K) lose float precision to that
// cancellation too: the offset (at most about the block's largest |w|) is added per weight.
inline at::Tensor weight_magnitude(const QuantizedMatrix& m, const at::Tensor& w_double, double tol) {
  at::Tensor mag = w_double.abs();
  if (m.format == QuantFormat::kQ4_1 || m.format == QuantFormat::kQ4_K || m.format == QuantFormat::kQ5_K) {
    const int64_t bs = m.block_size(), nb = m.blocks_per_row();
    at::Tensor padded = at::constant_pad_nd(mag, {0, nb * bs - m.cols}).view({m.rows, nb, bs});
    at::Tensor block_max = std::get<0>(padded.max(2, /*keepdim=*/true)) * 1.1;
    return mag + block_max.expand({m.rows, nb, bs}).reshape({m.rows, nb * bs}).narrow(1, 0, m.cols);
  }
  if (!is_nf4_format(m.format)) return mag;
  const int64_t nb = m.blocks_per_row();
  at::Tensor group = at::arange(m.rows * nb, at::kLong).floor_divide(256);
  at::Tensor parts = (m.absmax_codes.to(at::kDouble) * m.absmax_scale.to(at::kDouble).index_select(0, group)).abs() +
                     m.absmax_offset.to(at::kDouble).index_select(0, group).abs();
  at::Tensor per_weight = parts.view({m.rows, nb}).repeat_interleave(m.block_size(), 1).narrow(1, 0, m.cols);
  return mag + per_weight * (std::ldexp(1.0, -22) / tol);
}

// |y - ref| <= tol * abs_ref + 1e-9 elementwise, abs_ref being the sum of |terms| of each element.
inline void expect_close_to_reference(const at::Tensor& y, const at::Tensor& ref, const at::Tensor& abs_ref, double tol,
                                      const std::string& what) {
  at::Tensor err = (y.to(at::kDouble) - ref).abs();
  at::Tensor bound = abs_ref * tol + 1e-9;
  const bool ok = (err <= bound).all().item<bool>();
  EXPECT_TRUE(ok) << what << ": max error " << err.max().item<double>() << ", max ratio "
                  << (err / bound).max().item<double>();
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
  for (KernelIsa isa : {KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kAvx512, KernelIsa::kAvx512Vnni}) {
    if (cpu_supports_isa(isa)) isas.push_back(isa);
  }
  return isas;
}

// Whether load_model gives quantized matrices row tiles on this machine: where the best kernel
// set allowed is AVX-512 VNNI or AVX2, the two with row-tile kernels.
inline bool row_tiles_expected() {
  const KernelIsa best = best_available_isa();
  return best == KernelIsa::kAvx512Vnni || best == KernelIsa::kAvx2;
}

// The ISAs this CPU runs whose kernel sets carry row-tile kernels.
inline std::vector<KernelIsa> row_tile_isas() {
  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::kAvx2, KernelIsa::kAvx512Vnni})
    if (cpu_supports_isa(isa)) isas.push_back(isa);
  return isas;
}

}  // namespace hearth::test
