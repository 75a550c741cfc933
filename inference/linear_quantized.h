// The decoder's bridge to inference/quant: the few operations a Linear or Embedding needs
// from a packed weight, so the layers do not depend on the kernels' details.
#pragma once
#include <ATen/ATen.h>

#include <memory>

namespace hearth {

struct QuantizedMatrix;

int64_t quantized_rows(const QuantizedMatrix& m);
int64_t quantized_cols(const QuantizedMatrix& m);
size_t quantized_bytes(const QuantizedMatrix& m);
// x [..., cols] fp32 -> [..., rows]; differentiable with respect to x.
at::Tensor quantized_linear_forward(const at::Tensor& x, const std::shared_ptr<const QuantizedMatrix>& m);
at::Tensor quantized_to_fp32(const QuantizedMatrix& m);
// Rows [first, first + count) dequantized to fp32.
at::Tensor quantized_rows_fp32(const QuantizedMatrix& m, int64_t first, int64_t count);
// Embedding rows for ids (int64, any shape) -> fp32 [..., cols].
at::Tensor quantized_embedding(const QuantizedMatrix& m, const at::Tensor& ids);

}  // namespace hearth

#include "inference/quant/quant_format.h"

namespace hearth {
// Quantizes one weight [rows, cols] (any float dtype) for a model being loaded.
std::shared_ptr<const QuantizedMatrix> quantize_for_load(const at::Tensor& weight, QuantFormat format);
}  // namespace hearth
