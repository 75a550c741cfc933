// Choosing a split table's rows (split_table.h): which tokens' rows go in the finer format,
// and how many a bit budget pays for.
#pragma once
#include <ATen/ATen.h>

#include "inference/quant/quant_format.h"

namespace hearth {

// How often each id occurs in `ids` (int64, any shape): int64 [vocab].
at::Tensor token_counts(const at::Tensor& ids, int64_t vocab);
// The mask (bool [rows]) of the `count` ids with the largest `counts`; ties go to the lower id.
at::Tensor most_frequent_rows(const at::Tensor& counts, int64_t count);
// Stored bits of a [rows, cols] split table with `frequent` rows in `frequent_format` and the
// others in `rare_format`, row mask included.
double split_table_bits(int64_t rows, int64_t cols, int64_t frequent, QuantFormat frequent_format, QuantFormat rare_format);
// The most frequent rows a split table of [rows, cols] can have within `bits`; 0 when not even
// one fits, `rows` when the whole table fits in `frequent_format`.
int64_t split_rows_within(double bits, int64_t rows, int64_t cols, QuantFormat frequent_format, QuantFormat rare_format);

}  // namespace hearth
