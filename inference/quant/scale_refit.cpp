#include "inference/quant/scale_refit.h"

#include <algorithm>

#include "core/error.h"
#include "inference/quant/quant_grid.h"

namespace hearth {
namespace {

// Rows solved at a time: the [rows, cols] and [rows, blocks, blocks] double temporaries of a
// chunk stay near 32 MB each. By rows alone (4096), the block system of down on qwen2.5-0.5b
// in blocks of 32 (152² per row) took 166 MB a copy and 0.4 GB at once.
constexpr int64_t kRefitChunkBytes = int64_t(32) << 20, kRefitMaxChunkRows = 4096;

int64_t refit_chunk_rows(int64_t cols, int64_t blocks) {
  const int64_t row_bytes = 8 * (cols + blocks * blocks);
  return std::clamp<int64_t>(kRefitChunkBytes / row_bytes, 1, kRefitMaxChunkRows);
}

at::Tensor grid_values(QuantFormat format, const at::Tensor& levels) {
  at::Tensor table = at::empty({quant_grid_levels(format)}, at::kDouble);
  for (int i = 0; i < table.size(0); ++i) table[i] = static_cast<double>(quant_grid_value(format, i));
  return table.index_select(0, levels.reshape({-1}).to(at::kLong)).view(levels.sizes());
}

void check_shapes(QuantFormat format, const at::Tensor& w, const at::Tensor& levels, const at::Tensor& h, const at::Tensor& fallback) {
  require(w.dim() == 2 && levels.sizes() == w.sizes() && levels.scalar_type() == at::kByte, ErrorCode::kInvalidArgument,
          "refit_block_scales: weight and uint8 levels must be [rows, cols]");
  const int64_t cols = w.size(1), nb = (cols + quant_block_size(format) - 1) / quant_block_size(format);
  require(!h.defined() || (h.dim() == 2 && h.size(0) == cols && h.size(1) == cols), ErrorCode::kInvalidArgument,
          "refit_block_scales: the Hessian must be [cols, cols]");
  require(fallback.dim() == 2 && fallback.size(0) == w.size(0) && fallback.size(1) == nb, ErrorCode::kInvalidArgument,
          "refit_block_scales: fallback scales must be [rows, blocks]");
}

// Rows [r0, r0 + n): the normal equations A s = c of every row at once, in double.
at::Tensor refit_rows(QuantFormat format, const at::Tensor& w, const at::Tensor& levels, const at::Tensor& h, const at::Tensor& fallback) {
  const int64_t rows = w.size(0), cols = w.size(1), bs = quant_block_size(format), nb = (cols + bs - 1) / bs, padded = nb * bs;
  const auto pad = [&](const at::Tensor& t) { return at::constant_pad_nd(t, {0, padded - cols}, 0.0); };
  const at::Tensor v = grid_values(format, levels);  // [rows, cols]
  const at::Tensor wd = w.to(at::kDouble);
  const at::Tensor hw = h.defined() ? at::mm(wd, h) : wd;  // row r: H w_r
  // c[r, b] = q_rbᵀ (H w_r)_b
  const at::Tensor padded_v = pad(v);
  const at::Tensor c = (padded_v * pad(hw)).view({rows, nb, bs}).sum(2);
  // A[r, b, b'] = q_rbᵀ H_bb' q_rb': the codes of block b' alone through H, dotted with block b.
  at::Tensor a = at::empty({rows, nb, nb}, at::kDouble);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t c0 = b * bs, n = std::min(bs, cols - c0);
    const at::Tensor vb = v.narrow(1, c0, n);
    const at::Tensor hvb = h.defined() ? at::mm(vb, h.narrow(0, c0, n)) : at::constant_pad_nd(vb, {c0, cols - c0 - n}, 0.0);
    a.select(2, b).copy_((padded_v * pad(hvb)).view({rows, nb, bs}).sum(2));
  }
  // Blocks whose codes are all zero do not affect the error: pin them with an identity row
  // (in place: a is the chunk's largest tensor).
  const at::Tensor empty_block = (padded_v.view({rows, nb, bs}).abs().sum(2) == 0);
  a.masked_fill_(empty_block.unsqueeze(2) | empty_block.unsqueeze(1), 0.0);
  a.diagonal(0, 1, 2).masked_fill_(empty_block, 1.0);
  const at::Tensor rhs = at::where(empty_block, fallback.to(at::kDouble), c);
  // A tiny ridge keeps nearly dependent blocks (a dead input channel) solvable.
  const at::Tensor ridge = a.diagonal(0, 1, 2).abs().mean(1).clamp_min(1e-30) * 1e-10;
  a.diagonal(0, 1, 2).add_(ridge.unsqueeze(1));
  const at::Tensor s = at::linalg_solve(a, rhs.unsqueeze(2)).squeeze(2);
  return at::where(empty_block | s.isnan(), fallback.to(at::kDouble), s).to(at::kFloat);
}

}  // namespace

at::Tensor refit_block_scales(QuantFormat format, const at::Tensor& w, const at::Tensor& levels, const at::Tensor& hessian,
                              const at::Tensor& fallback) {
  check_shapes(format, w, levels, hessian, fallback);
  const at::Tensor h = hessian.defined() ? hessian.to(at::kDouble) : at::Tensor();
  const int64_t rows = w.size(0);
  at::Tensor out = at::empty(fallback.sizes(), at::kFloat);
  const int64_t chunk = refit_chunk_rows(w.size(1), fallback.size(1));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    out.narrow(0, r0, n).copy_(refit_rows(format, w.narrow(0, r0, n), levels.narrow(0, r0, n), h, fallback.narrow(0, r0, n)));
  }
  return out;
}

at::Tensor refit_block_scales_reference(QuantFormat format, const at::Tensor& w, const at::Tensor& levels, const at::Tensor& hessian,
                                        const at::Tensor& fallback) {
  check_shapes(format, w, levels, hessian, fallback);
  const int64_t rows = w.size(0), cols = w.size(1), bs = quant_block_size(format), nb = fallback.size(1);
  const at::Tensor h = hessian.defined() ? hessian.to(at::kDouble) : at::eye(cols, at::kDouble);
  const at::Tensor v = grid_values(format, levels);
  at::Tensor out = fallback.to(at::kFloat).clone();
  for (int64_t r = 0; r < rows; ++r) {
    at::Tensor q = at::zeros({cols, nb}, at::kDouble);
    for (int64_t c = 0; c < cols; ++c) q[c][c / bs] = v[r][c];
    // Only blocks with a nonzero code enter the solve.
    std::vector<int64_t> live;
    for (int64_t b = 0; b < nb; ++b)
      if (q.select(1, b).abs().sum().item<double>() > 0) live.push_back(b);
    if (live.empty()) continue;
    const at::Tensor ql = q.index_select(1, at::tensor(live, at::kLong));
    const at::Tensor a = at::mm(at::mm(ql.t(), h), ql);
    const at::Tensor rhs = at::mv(at::mm(ql.t(), h), w[r].to(at::kDouble));
    const at::Tensor s = at::linalg_solve(a, rhs);
    for (size_t i = 0; i < live.size(); ++i) out[r][live[i]] = s[i].item<double>();
  }
  return out;
}

}  // namespace hearth
