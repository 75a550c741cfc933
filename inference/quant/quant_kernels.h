// The CPU kernels behind the quantized matmuls, one set per instruction set (scalar, AVX2,
// AVX-512) over a plain pointer view of a packed matrix, and the dispatch point choosing one.
#pragma once
#include <cstdint>
#include <vector>

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

// x quantized to int8 for the integer decode kernel, once per matrix-vector product, in blocks
// of the weight format's block size (scale = absmax / 127) and laid out in the kernel's own order.
struct Q8Activation {
  std::vector<int8_t> values;
  std::vector<int8_t> magnitudes;   // AVX2: |values|
  std::vector<float> block_scales;  // AVX2: x's scale per block
  std::vector<float> lane_scales;   // AVX-512 VNNI: x's block scale per accumulator lane, per group
  std::vector<int32_t> lane_bias;   // the accumulators' starting values (undo the weights' offset)
};
using QuantizeActivationFn = void (*)(const PackedView& m, const float* x_padded, Q8Activation& out);
// The int8-activation GEMV for several activation vectors at once (the sequences of a batched
// decode step): ys[s][r] = sum_c W[r, c] * x_s[c] for r in [r0, r1), s < seqs. Each packed weight
// is unpacked once for all of them, and each sequence's result is bitwise what it gets in a call
// of its own, whatever the other sequences and the row range (batched requests then decode
// exactly as they would alone).
using MatmulQ8RowsFn = void (*)(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys,
                                int64_t r0, int64_t r1);
// The same product over a matrix's rows interleaved in tiles (row_tiles.h): x quantized in its
// natural order, then tiles [t0, t1) for every sequence.
struct RowTiles;
struct Q8Blocks;
using QuantizeBlocksFn = void (*)(const PackedView& m, const float* x_padded, Q8Blocks& out);
using MatmulRowTilesFn = void (*)(const RowTiles& w, const Q8Blocks* const* xs, int64_t seqs, float* const* ys,
                                  int64_t t0, int64_t t1);

struct QuantKernelSet {
  const char* name;
  MatvecRowsFn matvec_rows;
  DequantTileFn dequant_tile;
  // Optional (nullptr when absent): the decode GEMV over int8 activations, used instead of
  // matvec_rows when present. Its result differs from the float one by the activation rounding.
  QuantizeActivationFn quantize_activation = nullptr;
  MatmulQ8RowsFn matmul_q8_rows = nullptr;
  // Optional: the int8-activation product for matrices that carry row tiles, used instead of
  // matmul_q8_rows for them (every path of a process then sums such a matrix in the same order).
  QuantizeBlocksFn quantize_blocks = nullptr;
  MatmulRowTilesFn matmul_row_tiles = nullptr;
};

// matmul_q8_rows for one activation vector.
inline void matvec_q8_rows(const QuantKernelSet& k, const PackedView& m, const Q8Activation& x, float* y, int64_t r0,
                           int64_t r1) {
  const Q8Activation* xs[] = {&x};
  float* ys[] = {y};
  k.matmul_q8_rows(m, xs, 1, ys, r0, r1);
}

// Whether quant_matvec runs `format` through the set's int8-activation GEMV (Hearth's formats;
// GGUF formats always take the float GEMV).
inline bool uses_int8_activations(const QuantKernelSet& k, QuantFormat format) {
  return k.matmul_q8_rows != nullptr && !is_gguf_format(format);
}

// kAvx512Vnni: the AVX-512 set plus the int8-activation decode GEMV (vpdpbusd). The AVX2 set
// has its own int8-activation GEMV (vpmaddubsw); the plain AVX-512 and scalar sets use float x.
enum class KernelIsa { kAuto, kScalar, kAvx2, kAvx512, kAvx512Vnni };

// Whether this process may run kernels of `isa`: the CPU has it and the environment variable
// HEARTH_ISA (scalar or portable, avx2, avx512, avx512-vnni; unset: no cap) does not cap below
// it. kScalar and kAuto always can. Every ISA-specific path in Hearth asks this.
bool cpu_supports_isa(KernelIsa isa);
// The best ISA cpu_supports_isa allows.
KernelIsa best_available_isa();
// Forces one kernel set for tests and benchmarks (kAuto restores the best available); asking
// for an ISA the CPU lacks is a kUnsupported error.
void force_kernel_isa(KernelIsa isa);
// The kernel set the quantized ops use now.
const QuantKernelSet& active_kernels();
// The kernel set of `isa` (kAuto: the scalar one), whether or not this CPU can run it.
const QuantKernelSet& kernels_for(KernelIsa isa);
const char* kernel_isa_name(KernelIsa isa);

// Per-ISA kernel sets (defined in quant_kernels_<isa>.cpp).
const QuantKernelSet& scalar_kernels();
const QuantKernelSet& avx2_kernels();
const QuantKernelSet& avx512_kernels();
const QuantKernelSet& avx512_vnni_kernels();

// The int8-activation decode GEMV of the AVX2 set (quant_matvec_q8_avx2.cpp): vpmaddubsw,
// x in its natural order.
void quantize_activation_avx2(const PackedView& m, const float* x_padded, Q8Activation& out);
void matmul_q8_rows_avx2(const PackedView& m, const Q8Activation* const* xs, int64_t seqs, float* const* ys, int64_t r0,
                         int64_t r1);

// The reconstructed block scales of row r, blocks [b0, b1), as floats (shared by all kernels).
void row_block_scales(const PackedView& m, int64_t r, int64_t b0, int64_t b1, float* out);
// Blocks [0, blocks) of one row of `format` (codes in row-major order) to floats, each with its
// decoded scale, through the reference dequantizers (not for GGUF formats).
void dequant_row_blocks_scalar(QuantFormat format, const uint8_t* codes, const float* block_scales, int64_t blocks,
                               float* out);

}  // namespace hearth
