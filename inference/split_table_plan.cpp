#include "inference/split_table_plan.h"

#include "core/error.h"
#include "inference/quant/quantized_matrix.h"

namespace hearth {

at::Tensor token_counts(const at::Tensor& ids, int64_t vocab) {
  const at::Tensor flat = ids.reshape({-1}).to(at::kLong);
  require(flat.numel() == 0 || (flat.min().item<int64_t>() >= 0 && flat.max().item<int64_t>() < vocab), ErrorCode::kInvalidArgument,
          "token ids outside the vocabulary of " + std::to_string(vocab));
  return at::bincount(flat, {}, vocab);
}

at::Tensor most_frequent_rows(const at::Tensor& counts, int64_t count) {
  require(counts.dim() == 1 && count >= 0 && count <= counts.numel(), ErrorCode::kInvalidArgument,
          "most_frequent_rows: count outside the table");
  // A stable sort keeps equal counts in id order, so ties go to the lower id.
  const at::Tensor order = std::get<1>(counts.to(at::kLong).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  at::Tensor mask = at::zeros({counts.numel()}, at::kBool);
  mask.index_fill_(0, order.narrow(0, 0, count), true);
  return mask;
}

double split_table_bits(int64_t rows, int64_t cols, int64_t frequent, QuantFormat frequent_format, QuantFormat rare_format) {
  const int64_t bytes = packed_storage_bytes(frequent_format, frequent, cols) +
                        packed_storage_bytes(rare_format, rows - frequent, cols) + (rows + 7) / 8;
  return 8.0 * static_cast<double>(bytes);
}

int64_t split_rows_within(double bits, int64_t rows, int64_t cols, QuantFormat frequent_format, QuantFormat rare_format) {
  // Each frequent row costs more than a rare one, so the size grows with the count: bisect.
  int64_t lo = 0, hi = rows;
  if (split_table_bits(rows, cols, rows, frequent_format, rare_format) <= bits) return rows;
  if (split_table_bits(rows, cols, 0, frequent_format, rare_format) > bits) return 0;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (split_table_bits(rows, cols, mid, frequent_format, rare_format) <= bits ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace hearth
