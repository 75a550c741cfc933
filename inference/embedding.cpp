#include "inference/embedding.h"

#include <algorithm>

#include "core/error.h"
#include "inference/linear_quantized.h"

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
  return at::embedding(table_, ids).to(at::kFloat);
}

size_t Embedding::bytes() const { return quant_ ? quantized_bytes(*quant_) : table_.nbytes(); }

}  // namespace hearth
