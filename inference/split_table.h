// A tied embedding table / LM head stored as two row sets: the rows of the tokens a text uses
// most in one format (int8), every other row in a smaller one (nf4-32), and one bit per row
// saying which set holds it. On small models the table's 4-bit rounding costs as much as all
// the projections' (docs/quantization.md, "The split table over three seeds").
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "core/safetensors.h"
#include "inference/quant/quant_format.h"

namespace hearth {

struct QuantizedMatrix;

struct SplitTable {
  std::shared_ptr<const QuantizedMatrix> frequent;  // [k, cols], its rows in ascending id order
  std::shared_ptr<const QuantizedMatrix> rare;      // [rows - k, cols], ascending id order
  // uint8 [ceil(rows / 8)]: bit (r % 8) of byte r / 8 is set when row r is in `frequent`.
  at::Tensor frequent_mask;
  at::Tensor slot;  // int64 [rows]: row r's position in cat(frequent, rare) (derived from the mask)
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t frequent_rows() const;
};

// t with its two sets replaced (e.g. by copies carrying row tiles); the mask and slots are kept.
std::shared_ptr<const SplitTable> with_parts(const SplitTable& t, std::shared_ptr<const QuantizedMatrix> frequent,
                                             std::shared_ptr<const QuantizedMatrix> rare);
// The parts checked against the mask (each set's row count, the same width, no bit set past
// the last row): a mismatch is kCorruptFile naming `what`.
std::shared_ptr<const SplitTable> make_split_table(std::shared_ptr<const QuantizedMatrix> frequent,
                                                   std::shared_ptr<const QuantizedMatrix> rare, at::Tensor frequent_mask,
                                                   const std::string& what);
// A dense [rows, cols] weight split by `is_frequent` (bool [rows], at least one row on each
// side), each set quantized in its format.
std::shared_ptr<const SplitTable> split_table_from(const at::Tensor& weight, const at::Tensor& is_frequent,
                                                   QuantFormat frequent_format, QuantFormat rare_format);
// bool [rows] -> the stored row mask (uint8 [ceil(rows / 8)]).
at::Tensor pack_row_mask(const at::Tensor& is_frequent);

// int64 ids of any shape -> fp32 [..., cols], each row read from its set.
at::Tensor split_table_lookup(const SplitTable& t, const at::Tensor& ids);
// x [..., cols] fp32 -> [..., rows] in id order; differentiable with respect to x.
at::Tensor split_table_matmul(const SplitTable& t, const at::Tensor& x);
// Rows [first, first + count) as fp32; the whole table is never dequantized at once by this.
at::Tensor split_table_rows_fp32(const SplitTable& t, int64_t first, int64_t count);
size_t split_table_bytes(const SplitTable& t);

// prefix.frequent.*, prefix.rare.* (write_quantized's parts) and prefix.frequent_rows (the mask).
void write_split_table(SafetensorsWriter& w, const std::string& prefix, const SplitTable& t);
std::shared_ptr<const SplitTable> read_split_table(const SafetensorsFile& f, const std::string& prefix,
                                                   QuantFormat frequent_format, QuantFormat rare_format, int64_t rows,
                                                   int64_t cols);

}  // namespace hearth
