// Block scales refitted to codes already chosen: with the codes fixed, the layer's output error
// tr(D H Dᵀ) is quadratic in each row's block scales, so the best scales are one small linear
// solve per row. Run after rounding (plain or GPTQ), it recovers what a scale picked before
// rounding could not know.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quant_format.h"

namespace hearth {

// For w [rows, cols], grid levels [rows, cols] (uint8, as round_to_grid) and H [cols, cols]
// (undefined: the identity, i.e. the weights' own squared error), the scales [rows, blocks]
// minimizing Σ_r (w_r - Q_r s_r)ᵀ H (w_r - Q_r s_r), where Q_r holds row r's grid values
// block by block. A block whose codes are all zero keeps its scale from `fallback`.
at::Tensor refit_block_scales(QuantFormat format, const at::Tensor& w, const at::Tensor& levels, const at::Tensor& hessian,
                              const at::Tensor& fallback);

// The same, one row at a time with the explicit [cols, blocks] matrix Q and a dense solve in
// double: the reference for tests.
at::Tensor refit_block_scales_reference(QuantFormat format, const at::Tensor& w, const at::Tensor& levels,
                                        const at::Tensor& hessian, const at::Tensor& fallback);

}  // namespace hearth
