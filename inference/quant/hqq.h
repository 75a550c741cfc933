// Data-free refinement of block scales in the manner of HQQ (half-quadratic quantization):
// alternate rounding to the grid, a proximal step that keeps only the large residuals
// (the shrinkage of an lp-norm, p < 1, so a few outliers do not steer the fit), and the
// closed-form least-squares update of the scale. Needs no calibration data.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quant_format.h"

namespace hearth {

struct HqqOptions {
  double p = 0.7;       // the lp "norm" of the weight error the iterations minimize
  // The exponent of the error by which the kept iterate is chosen. Squared error: what a layer's
  // output feels; choosing by the lp error itself favoured shrunk scales that clip the largest
  // weights (stories260K: nf4 +9.66% -> +9.03%, int4 +13.70% -> +12.39% with 2).
  double selection_p = 2.0;
  double beta = 10.0;   // weight of the quadratic split term, grown by kappa each iteration
  double kappa = 1.01;
  int iterations = 20;
};

// Refines `initial` block scales [rows, blocks] of w [rows, cols]. The weights of each block
// are first divided by their absmax, so the options mean the same for any weight magnitude.
// Per block the iterate with the least sum |error|^selection_p is kept (the starting scale
// included, so the refinement never does worse than its start by that measure). Float [rows, blocks].
at::Tensor hqq_block_scales(QuantFormat format, const at::Tensor& w, const at::Tensor& initial, const HqqOptions& options = {});

// The same for one block of n weights, in plain double loops: the reference the vectorized
// version is tested against.
double hqq_block_scale_reference(QuantFormat format, const float* w, int64_t n, double initial, const HqqOptions& options = {});

}  // namespace hearth
