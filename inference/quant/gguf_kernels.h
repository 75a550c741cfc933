// The GEMV and tile-dequantization kernels of the GGUF block formats, one pair per instruction
// set; each kernel set of quant_kernels.h hands GGUF-format matrices to its pair here.
#pragma once
#include "inference/quant/quant_kernels.h"

namespace hearth {

void gguf_matvec_rows_scalar(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1);
void gguf_dequant_tile_scalar(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld);
void gguf_matvec_rows_avx2(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1);
void gguf_dequant_tile_avx2(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld);
void gguf_matvec_rows_avx512(const PackedView& m, const float* x, float* y, int64_t r0, int64_t r1);
void gguf_dequant_tile_avx512(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out, int64_t ld);

// Dequantizes `count` consecutive blocks of a GGUF-format row starting at `blocks` (the
// reference dequantize_row_* of gguf_blocks.h).
void gguf_dequantize_blocks(QuantFormat format, const uint8_t* blocks, int64_t count, float* out);

}  // namespace hearth
