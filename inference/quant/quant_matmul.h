// Multiplications by a quantized matrix: the fused decode GEMV, and the tile-dequantizing
// GEMMs used by prefill (x W^T) and by backward (g W). The dense matrix never exists whole.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quantized_matrix.h"

namespace hearth {

// How the decode GEMV may treat x. kInt8WhereFaster lets kernel sets that have one (avx512-vnni)
// round x to int8 per block first (see quant_matvec_q8_avx512.cpp): about 1% of the terms'
// magnitude, fine for inference. Training asks for kExact, so gradients see the true product.
enum class ActivationRounding { kExact, kInt8WhereFaster };

// y[rows] = W x for x[cols]; reads the packed codes directly, split over hearth::num_threads().
void quant_matvec(const QuantizedMatrix& m, const float* x, float* y,
                  ActivationRounding rounding = ActivationRounding::kInt8WhereFaster);

// y [n, rows] = x [n, cols] W^T as n decode GEMVs (one per row of x, each exactly what
// quant_matvec gives for it) that share every chunk of W while it is in cache: a batch of decode
// steps of different requests reads the weights from memory once.
void quant_matvec_batch(const QuantizedMatrix& m, const float* x, int64_t n, float* y,
                        ActivationRounding rounding = ActivationRounding::kInt8WhereFaster);

// Up to this many rows, quant_matmul with kInt8WhereFaster runs quant_matvec_batch when the
// kernel set has an int8-activation GEMV (then faster than dequantizing W for the BLAS).
constexpr int64_t kMatvecBatchMaxRows = 16;

// x [n, cols] -> [n, rows] = x W^T (float). n == 1 runs quant_matvec, a few rows (see above)
// quant_matvec_batch; larger n (or kExact) dequantize W a tile of rows at a time into a
// cache-sized buffer and multiply it with the BLAS (exact).
at::Tensor quant_matmul(const QuantizedMatrix& m, const at::Tensor& x,
                        ActivationRounding rounding = ActivationRounding::kInt8WhereFaster);

// g [n, rows] -> [n, cols] = g W (float): the input gradient of x W^T, from the packed weights.
at::Tensor quant_matmul_transposed(const QuantizedMatrix& m, const at::Tensor& g);

// Rows of W per dequantized tile for a matrix of `padded_cols` columns (a ~512 KiB buffer).
int64_t quant_tile_rows(int64_t padded_cols);

}  // namespace hearth
