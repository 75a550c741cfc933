// The quantized linear layer as a LibTorch autograd op: forward from the packed weights, and a
// backward that returns only the input gradient (the frozen base has no weight gradient).
#pragma once
#include <ATen/ATen.h>

#include <memory>

#include "inference/quant/quantized_matrix.h"

namespace hearth {

// x [..., cols] -> [..., rows] = x W^T (float). When x requires grad, the result carries a
// backward node computing grad_x = grad_y W through quant_matmul_transposed.
at::Tensor quant_linear(const at::Tensor& x, std::shared_ptr<const QuantizedMatrix> m);

}  // namespace hearth
