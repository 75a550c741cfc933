#include "inference/quant/scale_search.h"

#include <vector>

#include "core/error.h"
#include "inference/quant/quant_grid.h"

namespace hearth {
namespace {

// The grid values and the midpoints between neighbours, as float tensors.
struct GridTensors {
  at::Tensor values, midpoints;
};

const GridTensors& grid_tensors(QuantFormat format) {
  static const auto make = [](QuantFormat f) {
    const int n = quant_grid_levels(f);
    GridTensors g{at::empty({n}, at::kFloat), at::empty({n - 1}, at::kFloat)};
    for (int i = 0; i < n; ++i) g.values[i] = quant_grid_value(f, i);
    for (int i = 0; i + 1 < n; ++i) g.midpoints[i] = 0.5f * (quant_grid_value(f, i) + quant_grid_value(f, i + 1));
    return g;
  };
  static const GridTensors nf4 = make(QuantFormat::kNF4), int4 = make(QuantFormat::kInt4), int8 = make(QuantFormat::kInt8);
  switch (format) {
    case QuantFormat::kNF4:
    case QuantFormat::kNF4_32: return nf4;
    case QuantFormat::kInt4: return int4;
    case QuantFormat::kInt8: return int8;
  }
  return nf4;
}

}  // namespace

at::Tensor absmax_block_scales(QuantFormat format, const at::Tensor& w) {
  require(w.dim() == 2, ErrorCode::kInvalidArgument, "absmax_block_scales: expected a [rows, cols] weight");
  const int64_t bs = quant_block_size(format), cols = w.size(1), nb = (cols + bs - 1) / bs;
  at::Tensor padded = at::constant_pad_nd(w.to(at::kFloat).abs(), {0, nb * bs - cols}, 0.0);
  return std::get<0>(padded.view({w.size(0), nb, bs}).max(2)) / quant_grid_max(format);
}

at::Tensor grid_round_rows(QuantFormat format, const at::Tensor& w, const at::Tensor& scales) {
  const at::ScalarType dtype = w.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor s = scales.to(dtype).unsqueeze(1);
  const at::Tensor zero = s.eq(0);
  const at::Tensor v = w.to(dtype) * at::where(zero, at::ones_like(s), s).reciprocal();
  at::Tensor q;
  if (is_nf4_format(format)) {
    // The nearest NF4 value: how many midpoints lie strictly below v (as nf4_nearest_code).
    const GridTensors& g = grid_tensors(format);
    const at::Tensor index = at::bucketize(v.reshape({-1}), g.midpoints.to(dtype));
    q = g.values.to(dtype).index_select(0, index).view(v.sizes());
  } else {
    const float lo = quant_grid_value(format, 0), hi = quant_grid_value(format, quant_grid_levels(format) - 1);
    q = v.round().clamp(lo, hi);  // round half to even, as quant_grid_nearest
  }
  return at::where(zero, at::zeros_like(q), q * s);
}

at::Tensor search_block_scales(QuantFormat format, const at::Tensor& w_in, const at::Tensor& hessian,
                               const ScaleSearchOptions& o) {
  require(w_in.dim() == 2, ErrorCode::kInvalidArgument, "search_block_scales: expected a [rows, cols] weight");
  const int64_t rows = w_in.size(0), cols = w_in.size(1), bs = quant_block_size(format), nb = (cols + bs - 1) / bs;
  require(!hessian.defined() || (hessian.dim() == 2 && hessian.size(0) == cols && hessian.size(1) == cols),
          ErrorCode::kInvalidArgument, "search_block_scales: the Hessian must be [cols, cols]");
  require(o.steps >= 0 && o.min_shrink > 0 && o.min_shrink <= 1, ErrorCode::kInvalidArgument, "search_block_scales: bad options");
  const at::Tensor w = w_in.to(at::kFloat);
  at::Tensor best_scale = at::empty({rows, nb}, at::kFloat);
  std::vector<float> signs = {1.0f};
  if (o.try_negative && format != QuantFormat::kInt8) signs.push_back(-1.0f);  // int8's grid is symmetric
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * bs, n = std::min(bs, cols - c0);
    const at::Tensor wb = w.narrow(1, c0, n);
    const at::Tensor hb = hessian.defined() ? hessian.narrow(0, c0, n).narrow(1, c0, n).to(at::kFloat) : at::Tensor();
    const at::Tensor absmax = std::get<0>(wb.abs().max(1)) / quant_grid_max(format);
    at::Tensor best_err = at::full({rows}, INFINITY, at::kFloat), best = absmax.clone();
    for (int step = 0; step <= o.steps; ++step) {
      const double k = 1.0 - (1.0 - o.min_shrink) * step / std::max(1, o.steps);
      for (float sign : signs) {
        const at::Tensor s = absmax * (sign * k);
        const at::Tensor d = wb - grid_round_rows(format, wb, s);
        const at::Tensor err = hb.defined() ? (at::mm(d, hb) * d).sum(1) : d.square().sum(1);
        const at::Tensor better = err < best_err;
        best_err = at::where(better, err, best_err);
        best = at::where(better, s, best);
      }
    }
    best_scale.select(1, b).copy_(best);
  }
  return best_scale;
}

}  // namespace hearth
