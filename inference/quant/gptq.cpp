#include "inference/quant/gptq.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "inference/quant/quant_grid.h"

namespace hearth {
namespace {

// Rows of w in double held at once: 8M values (64 MB) bound the working copy; larger chunks
// only make the trailing-column products bigger, not fewer per weight.
constexpr int64_t kChunkValues = int64_t(1) << 23;

struct PreparedHessian {
  at::Tensor hessian;  // double, dead columns and dampening applied, columns permuted
  at::Tensor perm;     // int64 [cols]: position -> original column
  at::Tensor dead;     // bool [cols], original order
};

void check_inputs(QuantFormat format, const at::Tensor& w, const at::Tensor& scales, const at::Tensor& h, const GptqOptions& o) {
  require(w.dim() == 2, ErrorCode::kInvalidArgument, "gptq: expected a [rows, cols] weight");
  const int64_t rows = w.size(0), cols = w.size(1), nb = (cols + quant_block_size(format) - 1) / quant_block_size(format);
  require(scales.dim() == 2 && scales.size(0) == rows && scales.size(1) == nb, ErrorCode::kInvalidArgument,
          "gptq: block scales must be [rows, blocks]");
  require(h.dim() == 2 && h.size(0) == cols && h.size(1) == cols, ErrorCode::kInvalidArgument, "gptq: the Hessian must be [cols, cols]");
  require(o.damp > 0 && o.damp < 1 && o.block > 0, ErrorCode::kInvalidArgument, "gptq: damp must be in (0, 1) and block positive");
}

// out[i][j] = h[perm[i]][perm[j]] in double, written straight into one new matrix: the
// down projection's Hessian (4864² on the qwen2.5-0.5b shape) is 190 MB per copy.
at::Tensor permuted_double(const at::Tensor& h_in, const at::Tensor& perm_in) {
  const at::Tensor h = h_in.to(at::kDouble).contiguous(), perm = perm_in.contiguous();
  const int64_t n = h.size(0);
  at::Tensor out = at::empty({n, n}, at::kDouble);
  const double* src = h.data_ptr<double>();
  const int64_t* order = perm.data_ptr<int64_t>();
  double* dst = out.data_ptr<double>();
  at::parallel_for(0, n, 64, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      const double* row = src + order[i] * n;
      for (int64_t j = 0; j < n; ++j) dst[i * n + j] = row[order[j]];
    }
  });
  return out;
}

PreparedHessian prepare(const at::Tensor& h_in, const GptqOptions& o) {
  PreparedHessian p;
  at::Tensor diag = h_in.diagonal().to(at::kDouble).clone();
  p.dead = diag <= 0;
  diag.masked_fill_(p.dead, 1.0);
  diag.add_(o.damp * diag.mean().item<double>());
  const int64_t cols = h_in.size(0);
  p.perm = o.act_order ? std::get<1>(at::sort(diag, /*stable=*/true, /*dim=*/0, /*descending=*/true)) : at::arange(cols, at::kLong);
  p.hessian = permuted_double(h_in, p.perm);
  p.hessian.diagonal().copy_(diag.index_select(0, p.perm));
  return p;
}

// U with Uᵀ U = H⁻¹ (upper Cholesky factor of the inverse). A Hessian that is not positive
// definite within rounding gets ten times more dampening, up to three times. H is taken over
// and each intermediate dropped as soon as the next exists, so at most two matrices of H's
// size are alive at once.
at::Tensor inverse_cholesky_upper(at::Tensor&& h_in) {
  at::Tensor h = std::move(h_in);
  const double mean_diag = h.diagonal().mean().item<double>();
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto [lower, info] = at::linalg_cholesky_ex(h);
    if (info.item<int>() == 0) {
      h.reset();
      at::Tensor inverse = at::cholesky_inverse(lower);
      lower.reset();
      return at::linalg_cholesky(inverse, /*upper=*/true);
    }
    lower.reset();
    h.diagonal().add_(0.1 * std::pow(10.0, attempt) * mean_diag);
  }
  fail(ErrorCode::kInvalidArgument, "gptq: the calibration Hessian is not positive definite even with dampening; use more calibration tokens");
}

// Rows [r0, r1): the permuted working copy, rounded block by block.
void quantize_rows(QuantFormat format, const at::Tensor& w, const at::Tensor& scales, const PreparedHessian& p,
                   const at::Tensor& u, int64_t block, int64_t r0, int64_t r1, at::Tensor& levels_out) {
  const int64_t n = r1 - r0, cols = w.size(1), bs = quant_block_size(format);
  // Permuted in the weight's own type first: one double copy of the rows, not two.
  at::Tensor work = w.narrow(0, r0, n).index_select(1, p.perm).to(at::kDouble).contiguous();
  work.masked_fill_(p.dead.index_select(0, p.perm).unsqueeze(0), 0.0);
  const at::Tensor row_scales = scales.narrow(0, r0, n).to(at::kDouble).contiguous();
  const at::Tensor block_of = p.perm.floor_divide(bs).contiguous();  // permuted column -> its scale block
  const int64_t nb = row_scales.size(1);
  at::Tensor levels = at::empty({n, cols}, at::kByte);
  double* W = work.data_ptr<double>();
  const double* S = row_scales.data_ptr<double>();
  const int64_t* B = block_of.data_ptr<int64_t>();
  const double* U = u.data_ptr<double>();
  uint8_t* L = levels.data_ptr<uint8_t>();
  const uint8_t zero = static_cast<uint8_t>(quant_grid_nearest(format, 0.0f));
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(cols, i1 + block), count = i2 - i1;
    at::Tensor err = at::empty({n, count}, at::kDouble);
    double* E = err.data_ptr<double>();
    // Rows are independent given U: each thread takes whole rows through the block.
    at::parallel_for(0, n, 16, [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r) {
        double* wr = W + r * cols;
        for (int64_t i = i1; i < i2; ++i) {
          const double s = S[r * nb + B[i]];
          const int level = s != 0.0 ? quant_grid_nearest(format, static_cast<float>(wr[i] * (1.0 / s))) : zero;
          const double e = (wr[i] - s * quant_grid_value(format, level)) / U[i * cols + i];
          for (int64_t j = i + 1; j < i2; ++j) wr[j] -= e * U[i * cols + j];
          E[r * count + (i - i1)] = e;
          L[r * cols + i] = static_cast<uint8_t>(level);
        }
      }
    });
    if (i2 < cols) {
      at::Tensor rest = work.narrow(1, i2, cols - i2);
      rest.sub_(at::mm(err, u.narrow(0, i1, count).narrow(1, i2, cols - i2)));
    }
  }
  levels_out.narrow(0, r0, n).index_copy_(1, p.perm, levels);
}

}  // namespace

at::Tensor gptq_levels(QuantFormat format, const at::Tensor& w, const at::Tensor& scales, const at::Tensor& hessian,
                       const GptqOptions& o) {
  check_inputs(format, w, scales, hessian, o);
  PreparedHessian p = prepare(hessian, o);
  const at::Tensor u = inverse_cholesky_upper(std::move(p.hessian)).contiguous();
  const int64_t rows = w.size(0), cols = w.size(1);
  at::Tensor levels = at::empty({rows, cols}, at::kByte);
  const int64_t chunk = std::max<int64_t>(1, kChunkValues / cols);
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) quantize_rows(format, w, scales, p, u, o.block, r0, std::min(rows, r0 + chunk), levels);
  return levels;
}

at::Tensor gptq_levels_reference(QuantFormat format, const at::Tensor& w_in, const at::Tensor& scales_in,
                                 const at::Tensor& hessian, const GptqOptions& o) {
  check_inputs(format, w_in, scales_in, hessian, o);
  const PreparedHessian p = prepare(hessian, o);
  const int64_t rows = w_in.size(0), cols = w_in.size(1), bs = quant_block_size(format);
  const at::Tensor hinv_t = at::inverse(p.hessian).contiguous();
  const at::Tensor w = w_in.to(at::kDouble).contiguous(), scales = scales_in.to(at::kDouble).contiguous();
  const int64_t* perm = p.perm.data_ptr<int64_t>();
  const bool* dead = p.dead.data_ptr<bool>();
  at::Tensor levels = at::empty({rows, cols}, at::kByte);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> x(cols), hinv(hinv_t.data_ptr<double>(), hinv_t.data_ptr<double>() + cols * cols);
    for (int64_t j = 0; j < cols; ++j) x[j] = dead[perm[j]] ? 0.0 : w[r][perm[j]].item<double>();
    for (int64_t j = 0; j < cols; ++j) {
      const double s = scales[r][perm[j] / bs].item<double>();
      const int level = s != 0.0 ? quant_grid_nearest(format, static_cast<float>(x[j] * (1.0 / s))) : quant_grid_nearest(format, 0.0f);
      const double d = hinv[j * cols + j], e = (x[j] - s * quant_grid_value(format, level)) / d;
      for (int64_t k = j + 1; k < cols; ++k) x[k] -= e * hinv[j * cols + k];
      // Drop column j from the inverse: H⁻¹ of the remaining columns.
      for (int64_t k = j + 1; k < cols; ++k)
        for (int64_t l = j + 1; l < cols; ++l) hinv[k * cols + l] -= hinv[k * cols + j] * hinv[j * cols + l] / d;
      levels[r][perm[j]] = level;
    }
  }
  return levels;
}

}  // namespace hearth
