// Error-compensating rounding (GPTQ): the columns of a weight are rounded to the grid one at a
// time, and each rounding error is pushed onto the columns not yet rounded through the inverse
// of the layer's input Hessian H = XᵀX, so the layer's output error on the calibration inputs,
// not the weight error, is what gets minimized. Block scales are fixed beforehand.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quant_format.h"

namespace hearth {

struct GptqOptions {
  double damp = 0.01;      // added to H's diagonal, as a fraction of its mean: keeps H invertible
  int64_t block = 128;     // columns updated together before one matrix product carries the rest
  bool act_order = true;   // columns in order of decreasing H diagonal (most active inputs first)
};

// The grid levels (uint8 [rows, cols], as round_to_grid) of w [rows, cols] against the stored
// block scale values [rows, blocks], given H [cols, cols] (double or float, symmetric PSD).
// Columns whose H diagonal is 0 never saw an input: their weights are rounded as 0. Rows are
// processed in chunks, so the working copy of w stays bounded for any number of rows.
at::Tensor gptq_levels(QuantFormat format, const at::Tensor& w, const at::Tensor& scale_values, const at::Tensor& hessian,
                       const GptqOptions& options = {});

// The same result computed the slow, obvious way (the OBQ form): per row, each column rounded
// in turn, the remaining columns corrected by the explicit inverse Hessian, which is then
// downdated to drop the rounded column. O(rows * cols^3); for tests.
at::Tensor gptq_levels_reference(QuantFormat format, const at::Tensor& w, const at::Tensor& scale_values,
                                 const at::Tensor& hessian, const GptqOptions& options = {});

}  // namespace hearth
