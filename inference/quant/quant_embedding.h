// Embedding lookup from a quantized table: only the requested rows are dequantized.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quantized_matrix.h"

namespace hearth {

// int64 ids of any shape -> float [..., cols]; an id outside [0, rows) is kInvalidArgument.
at::Tensor quant_embedding(const QuantizedMatrix& m, const at::Tensor& ids);

}  // namespace hearth
