// The CPU kernels behind the quantized matmuls, one set per instruction set (scalar, AVX2,
// AVX-512) over a plain pointer view of a packed matrix, and the dispatch point choosing one.
#pragma once
#include <cstdint>

#include "inference/quant/quant_format.h"

namespace hearth {

// Raw pointers into a QuantizedMatrix's tensors: the kernels read nothing else.
struct PackedView {
  QuantFormat format;
  int64_t rows, cols, blocks_per_row;
  int64_t row_bytes;              // packed code bytes per row
  const uint8_t* codes;           // rows * row_bytes
  const uint16_t* scales;         // int4 / int8: fp16 bits, rows * blocks_per_row
  const int8_t* absmax_codes;     // nf4: rows * blocks_per_row
  const float* absmax_scale;      // nf4: per group of 256 blocks
  const float* absmax_offset;
};

// y[r] = sum_c W[r, c] * x[c] for rows [r0, r1). x holds blocks_per_row * block floats with
// zeros past cols (so the padded codes never matter).
using MatvecRowsFn = void (*)(const PackedView& m, const float* x_padded, float* y, int64_t r0, int64_t r1);
// Dequantizes rows [r0, r1) x blocks [b0, b1) to out (row stride ld floats).
using DequantTileFn = void (*)(const PackedView& m, int64_t r0, int64_t r1, int64_t b0, int64_t b1, float* out,
                               int64_t ld);

struct QuantKernelSet {
  const char* name;
  MatvecRowsFn matvec_rows;
  DequantTileFn dequant_tile;
};

enum class KernelIsa { kAuto, kScalar, kAvx2, kAvx512 };

// Whether this CPU can run kernels of `isa` (kScalar and kAuto always can).
bool cpu_supports_isa(KernelIsa isa);
// Forces one kernel set for tests and benchmarks (kAuto restores the best available); asking
// for an ISA the CPU lacks is a kUnsupported error.
void force_kernel_isa(KernelIsa isa);
// The kernel set the quantized ops use now.
const QuantKernelSet& active_kernels();
const char* kernel_isa_name(KernelIsa isa);

// Per-ISA kernel sets (defined in quant_kernels_<isa>.cpp).
const QuantKernelSet& scalar_kernels();
const QuantKernelSet& avx2_kernels();
const QuantKernelSet& avx512_kernels();

// The reconstructed block scales of row r, blocks [b0, b1), as floats (shared by all kernels).
void row_block_scales(const PackedView& m, int64_t r, int64_t b0, int64_t b1, float* out);

}  // namespace hearth
