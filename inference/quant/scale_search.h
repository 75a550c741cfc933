// Choosing block scales better than absmax: a search over shrunk (clipped) and sign-flipped
// candidates per block, judged by the weights' squared error or, given the layer's input
// statistics H = XᵀX, by the block's share of the layer's output error (AWQ's clipping search).
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quant_format.h"

namespace hearth {

// Block scales [rows, blocks] = absmax / quant_grid_max: every weight lands inside the grid.
at::Tensor absmax_block_scales(QuantFormat format, const at::Tensor& w);

// The values of w [rows, n] rounded to the grid against one scale per row (scales [rows]),
// in units of w: scale * grid value, in double for a double w, else float. A zero scale
// rounds every weight to 0.
at::Tensor grid_round_rows(QuantFormat format, const at::Tensor& w, const at::Tensor& scales);

struct ScaleSearchOptions {
  double min_shrink = 0.5;  // candidates absmax * k / grid max for k from 1 down to this
  int steps = 20;           // k in steps of (1 - min_shrink) / steps
  bool try_negative = true; // also -scale: the 4-bit grids are not symmetric (int4 -8..7)
};

// Per block, the candidate with the least error: sum of squared weight errors when `hessian`
// is undefined, else δᵀ H_bb δ with H_bb the block's diagonal block of H [cols, cols]
// (cross-block terms are ignored, as AWQ's per-group clipping does). Float [rows, blocks].
at::Tensor search_block_scales(QuantFormat format, const at::Tensor& w, const at::Tensor& hessian = {},
                               const ScaleSearchOptions& options = {});

}  // namespace hearth
