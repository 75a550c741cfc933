#include "inference/embedding.h"

#include <algorithm>

#include "core/error.h"
#include "inference/linear_quantized.h"
#include "inference/split_table.h"

namespace hearth {

Embedding Embedding::dense(at::Tensor table) {
  require(table.dim() == 2, ErrorCode::kInvalidArgument, "an embedding table must be 2-D");
  Embedding e;
  e.vocab_ = table.size(0);
  e.hidden_ = table.size(1);
  e.table_ = std::move(table);
  return e;
}

Embedding Embedding::quantized(std::shared_ptr<const QuantizedMatrix> table) {
  Embedding e;
  e.vocab_ = quantized_rows(*table);
  e.hidden_ = quantized_cols(*table);
  e.quant_ = std::move(table);
  return e;
}

Embedding Embedding::split(std::shared_ptr<const SplitTable> table) {
  Embedding e;
  e.vocab_ = table->rows;
  e.hidden_ = table->cols;
  e.split_ = std::move(table);
  return e;
}

at::Tensor Embedding::lookup(const at::Tensor& ids) const {
  if (ids.numel() > 0) {
    // Scanned on the host: two reductions and .item() calls cost more than a decode step's lookup.
    const at::Tensor flat = ids.to(at::kLong).contiguous();
    const int64_t* p = flat.data_ptr<int64_t>();
    const auto [lo_it, hi_it] = std::minmax_element(p, p + flat.numel());
    const int64_t lo = *lo_it, hi = *hi_it;
    require(lo >= 0 && hi < vocab_, ErrorCode::kInvalidArgument,
            "token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary of " + std::to_string(vocab_));
  }
  if (quant_) return quantized_embedding(*quant_, ids);
  if (split_) return split_table_lookup(*split_, ids);
  return at::embedding(table_, ids).to(at::kFloat);
}

at::Tensor Embedding::table_fp32() const {
  if (quant_) return quantized_to_fp32(*quant_);
  if (split_) return split_table_rows_fp32(*split_, 0, vocab_);
  return table_.to(at::kFloat);
}

size_t Embedding::bytes() const {
  if (quant_) return quantized_bytes(*quant_);
  if (split_) return split_table_bytes(*split_);
  return table_.nbytes();
}

}  // namespace hearth
