#include "inference/quant/hqq.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "inference/quant/quant_grid.h"
#include "inference/quant/scale_search.h"

namespace hearth {
namespace {

// The proximal step of |r|^p: shrinks every residual towards 0 by |r|^(p-1) / beta; the small
// ones (most of them) become 0, the large ones keep most of their size.
at::Tensor shrink_lp(const at::Tensor& r, double beta, double p) {
  return at::sign(r) * at::relu(r.abs() - r.abs().pow(p - 1.0) / beta);
}

double shrink_lp(double r, double beta, double p) {
  if (r == 0.0) return 0.0;
  const double m = std::fabs(r) - std::pow(std::fabs(r), p - 1.0) / beta;
  return m > 0.0 ? std::copysign(m, r) : 0.0;
}

double lp_error(QuantFormat format, const double* w, int64_t n, double s, double p) {
  double err = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double q = s != 0.0 ? s * quant_grid_value(format, quant_grid_nearest(format, static_cast<float>(w[i] * (1.0 / s)))) : 0.0;
    err += std::pow(std::fabs(w[i] - q), p);
  }
  return err;
}

void check_options(const HqqOptions& o) {
  require(o.p > 0 && o.p <= 2 && o.selection_p > 0 && o.selection_p <= 2 && o.beta > 0 && o.kappa >= 1 &&
              o.iterations >= 0 && o.iterations <= 10000,
          ErrorCode::kInvalidArgument,
          "HQQ options out of range (0 < p <= 2, 0 < selection_p <= 2, beta > 0, kappa >= 1, 0 <= iterations <= 10000)");
}

}  // namespace

at::Tensor hqq_block_scales(QuantFormat format, const at::Tensor& w_in, const at::Tensor& initial, const HqqOptions& o) {
  check_options(o);
  require(w_in.dim() == 2, ErrorCode::kInvalidArgument, "hqq_block_scales: expected a [rows, cols] weight");
  const int64_t rows = w_in.size(0), cols = w_in.size(1), bs = quant_block_size(format), nb = (cols + bs - 1) / bs;
  require(initial.dim() == 2 && initial.size(0) == rows && initial.size(1) == nb, ErrorCode::kInvalidArgument,
          "hqq_block_scales: initial scales must be [rows, blocks]");
  // Every block is a row of `blocks` [rows * nb, bs]; zero padding rounds to 0 and adds nothing.
  at::Tensor blocks = at::constant_pad_nd(w_in.to(at::kDouble), {0, nb * bs - cols}, 0.0).view({rows * nb, bs});
  at::Tensor absmax = std::get<0>(blocks.abs().max(1));
  const at::Tensor live = absmax > 0;
  absmax = at::where(live, absmax, at::ones_like(absmax));
  const at::Tensor wn = blocks / absmax.unsqueeze(1);
  at::Tensor s = initial.to(at::kDouble).reshape({-1}) / absmax;
  const auto error_of = [&](const at::Tensor& scale) {
    return (wn - grid_round_rows(format, wn, scale)).abs().pow(o.selection_p).sum(1);
  };
  at::Tensor best = s.clone(), best_err = error_of(s);
  double beta = o.beta;
  for (int it = 0; it < o.iterations; ++it) {
    const at::Tensor nonzero = s.ne(0).unsqueeze(1);
    const at::Tensor sq = grid_round_rows(format, wn, s);  // s * q
    const at::Tensor q = at::where(nonzero, sq / at::where(nonzero, s.unsqueeze(1), at::ones_like(sq)), at::zeros_like(sq));
    const at::Tensor we = shrink_lp(wn - sq, beta, o.p);
    const at::Tensor qq = q.square().sum(1);
    s = at::where(qq > 0, ((wn - we) * q).sum(1) / at::where(qq > 0, qq, at::ones_like(qq)), s);
    beta *= o.kappa;
    const at::Tensor err = error_of(s);
    const at::Tensor better = err < best_err;
    best = at::where(better, s, best);
    best_err = at::where(better, err, best_err);
  }
  return at::where(live, best * absmax, initial.to(at::kDouble).reshape({-1})).view({rows, nb}).to(at::kFloat);
}

double hqq_block_scale_reference(QuantFormat format, const float* w_in, int64_t n, double initial, const HqqOptions& o) {
  check_options(o);
  double absmax = 0.0;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(static_cast<double>(w_in[i])));
  if (absmax == 0.0) return initial;
  std::vector<double> w(n), q(n);
  for (int64_t i = 0; i < n; ++i) w[i] = w_in[i] / absmax;
  double s = initial / absmax, best = s, best_err = lp_error(format, w.data(), n, s, o.selection_p), beta = o.beta;
  for (int it = 0; it < o.iterations; ++it) {
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      q[i] = s != 0.0 ? quant_grid_value(format, quant_grid_nearest(format, static_cast<float>(w[i] * (1.0 / s)))) : 0.0;
      const double we = shrink_lp(w[i] - s * q[i], beta, o.p);
      num += (w[i] - we) * q[i];
      den += q[i] * q[i];
    }
    if (den > 0.0) s = num / den;
    beta *= o.kappa;
    const double err = lp_error(format, w.data(), n, s, o.selection_p);
    if (err < best_err) {
      best = s;
      best_err = err;
    }
  }
  return best * absmax;
}

}  // namespace hearth
