// Plain double-precision references for the quantized kernels: each weight decoded straight
// from the packed bytes, products summed in double. Slow on purpose; the tests compare with it.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "inference/quant/quantized_matrix.h"

namespace hearth {

// W[r, c] decoded in double from the stored codes and scales.
double reference_weight(const QuantizedMatrix& m, int64_t r, int64_t c);
// sum_c W[r, c] x[c].
double reference_dot(const QuantizedMatrix& m, int64_t r, const double* x);
// W x for x[cols].
std::vector<double> reference_matvec(const QuantizedMatrix& m, const double* x);
// W x as the int8-activation decode kernel defines it: x rounded to int8 per weight block
// (scale = absmax / 127, rounding as the kernel does in float) and NF4 code values taken from
// kNF4Int8Table; products summed in double.
std::vector<double> reference_matvec_q8(const QuantizedMatrix& m, const float* x);
// The whole matrix as double [rows, cols].
at::Tensor reference_dequantize(const QuantizedMatrix& m);

}  // namespace hearth
