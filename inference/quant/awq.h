// Activation-aware scaling (AWQ): input channels that carry large activations are scaled up in
// the weight before rounding (W diag(s)) and the input is scaled down by the same factors
// (the caller folds 1/s into the norm or weight that produces it), so the rounding error of
// the columns that matter most shrinks. s = mean|x|^alpha with alpha searched per layer.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace hearth {

// What rounding does to a weight: [n, cols] float in, the dequantized [n, cols] out.
using WeightRounder = std::function<at::Tensor(const at::Tensor&)>;

struct AwqOptions {
  int grid = 20;           // alpha in {0, 1/grid, ..., (grid - 1)/grid}; alpha 0 is plain rounding
  int64_t max_rows = 1024; // rows of each weight the search looks at (evenly spaced), for speed
};

struct AwqResult {
  at::Tensor scales;      // float [cols]: multiply W's columns, divide the input, by these
  double alpha = 0;
  double error = 0;       // summed output error at the chosen alpha (on the searched rows)
  double plain_error = 0; // the same without scaling (alpha 0)
};

// tr(D H Dᵀ) for a weight error D [rows, cols]: the summed squared output error over the
// calibration inputs whose Gram matrix is H = XᵀX.
double output_error(const at::Tensor& delta, const at::Tensor& hessian);

// Per-channel scales for weights that share one input (e.g. q, k and v), from that input's
// H [cols, cols] and mean |x| per channel [cols], minimizing the summed output error of
// rounding every weight with `round`. Scales are normalized so sqrt(max * min) = 1.
AwqResult awq_search(const std::vector<at::Tensor>& weights, const at::Tensor& hessian, const at::Tensor& mean_abs,
                     const WeightRounder& round, const AwqOptions& options = {});

// The scales for one alpha, as awq_search forms them.
at::Tensor awq_scales(const at::Tensor& mean_abs, double alpha);

// The rows awq_search looks at for a weight of `rows` rows.
at::Tensor awq_search_rows(int64_t rows, int64_t max_rows);

}  // namespace hearth
