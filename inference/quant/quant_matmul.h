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

// Up to this many rows, quant_matmul inside a DecodeRowsScope runs quant_matvec_batch.
constexpr int64_t kMatvecBatchMaxRows = 16;

// While one lives on this thread, quant_matmul treats a product of up to kMatvecBatchMaxRows rows
// as that many decode steps (quant_matvec_batch with kInt8WhereFaster): each row then rounds
// exactly as a single request's decode GEMV, whatever else is in the batch. A batched decode step
// of several requests opens one; prompts never do (their rows take the exact GEMM whatever their
// number, so a prompt's result does not depend on how it is cut or batched).
class DecodeRowsScope {
 public:
  DecodeRowsScope();
  ~DecodeRowsScope();
  DecodeRowsScope(const DecodeRowsScope&) = delete;
  DecodeRowsScope& operator=(const DecodeRowsScope&) = delete;

 private:
  bool previous_;
};

// While one lives on this thread, quant_matmul computes every row of a product whose format has
// int8-activation kernels (nf4, int4, int8 where the CPU has them) the way a decode step computes
// its one row: int8 activations through the batched GEMV kernel, which unpacks each run of
// weights once for eight rows. That is about twice as fast as dequantized tiles and the BLAS for
// a prompt, and a row's result still depends on that row alone, so a prompt computes the same
// however it is cut or batched (and its rows round as its decode steps will). Generation opens
// one for its prompt; perplexity and training keep the exact GEMM. Other formats keep it too.
class PromptRowsScope {
 public:
  PromptRowsScope();
  ~PromptRowsScope();
  PromptRowsScope(const PromptRowsScope&) = delete;
  PromptRowsScope& operator=(const PromptRowsScope&) = delete;

 private:
  bool previous_;
};

// x [n, cols] -> [n, rows] = x W^T (float). n == 1 runs quant_matvec, a few rows inside a
// DecodeRowsScope or any number inside a PromptRowsScope quant_matvec_batch; otherwise W is
// dequantized a tile of rows at a time into a cache-sized buffer and multiplied with the BLAS
// (exact).
at::Tensor quant_matmul(const QuantizedMatrix& m, const at::Tensor& x,
                        ActivationRounding rounding = ActivationRounding::kInt8WhereFaster);

// g [n, rows] -> [n, cols] = g W (float): the input gradient of x W^T, from the packed weights.
at::Tensor quant_matmul_transposed(const QuantizedMatrix& m, const at::Tensor& g);

// Rows of W per dequantized tile for a matrix of `padded_cols` columns (a ~512 KiB buffer).
int64_t quant_tile_rows(int64_t padded_cols);

}  // namespace hearth
