#include "inference/quant/awq.h"

#include "core/error.h"

namespace hearth {

double output_error(const at::Tensor& delta, const at::Tensor& hessian) {
  const at::Tensor d = delta.to(at::kDouble);
  return (at::mm(d, hessian.to(at::kDouble)) * d).sum().item<double>();
}

at::Tensor awq_scales(const at::Tensor& mean_abs, double alpha) {
  const at::Tensor a = mean_abs.to(at::kDouble);
  // Channels that never carried a value keep a small positive scale (no division by zero when
  // the caller folds 1/s; the weight column times that scale is what such a channel meets).
  const double floor = std::max(a.max().item<double>() * 1e-5, 1e-30);
  at::Tensor s = a.clamp_min(floor).pow(alpha);
  s = s / (s.max() * s.min()).sqrt();
  return s.to(at::kFloat);
}

at::Tensor awq_search_rows(int64_t rows, int64_t max_rows) {
  const int64_t stride = std::max<int64_t>(1, (rows + max_rows - 1) / max_rows);
  return at::arange(0, rows, stride, at::kLong);
}

AwqResult awq_search(const std::vector<at::Tensor>& weights, const at::Tensor& hessian, const at::Tensor& mean_abs,
                     const WeightRounder& round, const AwqOptions& o) {
  require(!weights.empty() && o.grid > 0 && o.max_rows > 0, ErrorCode::kInvalidArgument, "awq_search: nothing to search");
  const int64_t cols = mean_abs.size(0);
  require(hessian.dim() == 2 && hessian.size(0) == cols && hessian.size(1) == cols, ErrorCode::kInvalidArgument,
          "awq_search: the Hessian must be [cols, cols]");
  std::vector<at::Tensor> sampled;
  for (const at::Tensor& w : weights) {
    require(w.dim() == 2 && w.size(1) == cols, ErrorCode::kInvalidArgument, "awq_search: every weight must have the input's width");
    sampled.push_back(w.index_select(0, awq_search_rows(w.size(0), o.max_rows)).to(at::kFloat));
  }
  const at::Tensor h = hessian.to(at::kDouble);
  AwqResult best;
  for (int step = 0; step < o.grid; ++step) {
    const double alpha = static_cast<double>(step) / o.grid;
    const at::Tensor s = awq_scales(mean_abs, alpha);
    double err = 0;
    for (const at::Tensor& w : sampled) {
      const at::Tensor rounded = round(w * s.unsqueeze(0)) / s.unsqueeze(0);
      err += output_error(rounded - w, h);
    }
    if (step == 0) best.plain_error = err;
    if (step == 0 || err < best.error) {
      best.error = err;
      best.alpha = alpha;
      best.scales = s;
    }
  }
  return best;
}

}  // namespace hearth
