// Quantization split into its two choices, for the methods that make them differently from
// plain rounding (GPTQ, AWQ, HQQ): the block scales, rounded to what a format stores, and the
// code of every weight on the format's grid; then packing both into a QuantizedMatrix.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quantized_matrix.h"

namespace hearth {

// A format's grid: the values its codes stand for before the block scale, as levels
// 0..levels-1 in ascending order (nf4: the NF4 table; int4: -8..7; int8: -127..127).
int quant_grid_levels(QuantFormat format);
float quant_grid_value(QuantFormat format, int level);
// The level whose value is nearest to v (v in units of the block scale; outside the grid it
// clamps to the end levels).
int quant_grid_nearest(QuantFormat format, float v);
// The largest grid value: a block scale of absmax / this maps the block onto the grid.
float quant_grid_max(QuantFormat format);

// Block scales as a format stores them: fp16 per block (int4, int8), or nf4's double-quantized
// absmaxes (int8 codes with an fp32 scale and offset per group of 256 blocks, row-major).
struct StoredScales {
  QuantFormat format = QuantFormat::kNF4;
  at::Tensor values;  // float [rows, blocks]: exactly what the kernels multiply by
  at::Tensor fp16;    // int4 / int8: half [rows, blocks]
  at::Tensor absmax_codes, absmax_scale, absmax_offset;  // nf4, as in QuantizedMatrix
};

// Rounds wanted block scales (float [rows, blocks], any sign) to the format's storage.
StoredScales store_block_scales(QuantFormat format, const at::Tensor& wanted);

// The nearest level of every weight of w (float [rows, cols]) against stored scale values
// (float [rows, blocks]): uint8 [rows, cols]. A zero scale gives the level of 0.
at::Tensor round_to_grid(QuantFormat format, const at::Tensor& w, const at::Tensor& scale_values);

// levels * scales as double [rows, cols]: what a packed matrix of these parts decodes to.
at::Tensor grid_dequantize(QuantFormat format, const at::Tensor& levels, const at::Tensor& scale_values);

// Packs levels (uint8 [rows, cols]) and stored scales into the format's layout (padding codes
// stand for 0), so the existing kernels run it unchanged.
QuantizedMatrix pack_quantized(const StoredScales& scales, const at::Tensor& levels);

// The levels (uint8 [rows, cols]) and the scale values (float [rows, blocks]) a packed matrix
// holds: the inverse of pack_quantized, for methods that adjust a quantized matrix.
at::Tensor unpack_levels(const QuantizedMatrix& m);
at::Tensor block_scale_values(const QuantizedMatrix& m);

}  // namespace hearth
