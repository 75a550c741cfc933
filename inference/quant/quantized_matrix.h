// A frozen weight matrix stored in a quantized format: the packed tensors, quantization from a
// dense weight, and dequantization back (whole, or a tile at a time for the GEMM kernels).
#pragma once
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "inference/quant/quant_format.h"
#include "inference/quant/quant_kernels.h"

namespace hearth {

// A [rows = out_features, cols = in_features] weight, packed row-major along cols in blocks
// (the last block of a row padded). The tensors may be zero-copy views of a mapped file:
// nothing ever writes to them after quantize_matrix.
struct QuantizedMatrix {
  QuantFormat format = QuantFormat::kNF4;
  int64_t rows = 0;
  int64_t cols = 0;
  // Packed codes, [rows, blocks_per_row() * quant_block_bytes(format)]: uint8 for nf4, nf4-32
  // and int4 (two codes per byte), int8 for int8.
  at::Tensor codes;
  // int4 / int8: fp16 scale per block, [rows, blocks_per_row()].
  at::Tensor scales;
  // nf4, nf4-32: the int8 double-quantized absmax per block, [rows * blocks_per_row()], and the fp32
  // scale and offset per group of kNF4AbsmaxGroup blocks, [ceil(rows * blocks / 256)] each.
  at::Tensor absmax_codes;
  at::Tensor absmax_scale;
  at::Tensor absmax_offset;
  // Optional, for inference: the codes again with rows interleaved in tiles, which the int8
  // kernels of CPUs with AVX-512 VNNI or AVX2 read instead (with_row_tiles). Never saved or trained.
  std::shared_ptr<const RowTiles> tiles;

  int64_t block_size() const { return quant_block_size(format); }
  int64_t blocks_per_row() const { return (cols + block_size() - 1) / block_size(); }
  int64_t padded_cols() const { return blocks_per_row() * block_size(); }
  // Bytes of every stored tensor, scales included.
  size_t storage_bytes() const;
  // storage_bytes() * 8 / (rows * cols).
  double bits_per_weight() const;
  // Raw pointers for the kernels; checks the tensors are contiguous and of the right size.
  PackedView view() const;
};

// m with its rows also interleaved in tiles when the best kernels this CPU allows read tiles and
// m's format has int8 kernels; else m itself. Costs a second copy of the codes (for now).
// rows_copied: as tile_rows's (row_tiles.h).
std::shared_ptr<const QuantizedMatrix> with_row_tiles(std::shared_ptr<const QuantizedMatrix> m,
                                                      const std::function<void(int64_t r0, int64_t r1)>& rows_copied = {});
// Whether kernel set k runs m through its row tiles.
inline bool uses_row_tiles(const QuantKernelSet& k, const QuantizedMatrix& m) {
  return m.tiles != nullptr && k.matmul_row_tiles != nullptr;
}

// Sizes of the stored parts for a given shape, shared by quantize, validation and the reader.
int64_t nf4_absmax_groups(QuantFormat format, int64_t rows, int64_t cols);
// Bytes of one row's codes as a file stores them: whole blocks, then a last, partial block's
// codes without their padding (4-bit codes two per byte, int8 one per byte) when that is
// shorter; in memory the partial block is padded, as the kernels read whole blocks.
int64_t stored_row_code_bytes(QuantFormat format, int64_t cols);
// storage_bytes() as a file stores m (its codes as stored_row_code_bytes says): what a bit
// budget counts.
int64_t stored_bytes(const QuantizedMatrix& m);
// stored_bytes() of a [rows, cols] matrix in one of Hearth's formats (nf4, nf4-32, int4, int8),
// without quantizing one: what a bit budget is planned with.
int64_t packed_storage_bytes(QuantFormat format, int64_t rows, int64_t cols);

// Quantizes a float / bf16 / half weight [rows, cols]; any cols (the last block is padded).
QuantizedMatrix quantize_matrix(const at::Tensor& weight, QuantFormat format);

// The dequantized float [rows, cols] matrix.
at::Tensor dequantize_matrix(const QuantizedMatrix& m);

// Checks shapes and dtypes of every part against format/rows/cols; kCorruptFile naming the
// part (with `what`, e.g. the tensor name prefix) on any mismatch.
void validate_quantized(const QuantizedMatrix& m, const std::string& what);

}  // namespace hearth
