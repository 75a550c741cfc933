// The token embedding table, dense or quantized; lookups dequantize only the rows asked for.
#pragma once
#include <ATen/ATen.h>

#include <memory>

namespace hearth {

struct QuantizedMatrix;
struct SplitTable;

class Embedding {
 public:
  Embedding() = default;
  static Embedding dense(at::Tensor table);  // [vocab, hidden], fp32 or bf16, used without a copy
  static Embedding quantized(std::shared_ptr<const QuantizedMatrix> table);
  static Embedding split(std::shared_ptr<const SplitTable> table);

  // ids (int64, any shape) -> fp32 [..., hidden]. Fails on ids outside the vocabulary.
  at::Tensor lookup(const at::Tensor& ids) const;
  int64_t vocab_size() const { return vocab_; }
  int64_t hidden_size() const { return hidden_; }
  const at::Tensor& dense_table() const { return table_; }
  const std::shared_ptr<const QuantizedMatrix>& quantized_table() const { return quant_; }
  const std::shared_ptr<const SplitTable>& split_table() const { return split_; }
  // The whole table as fp32 (a transient copy, for merging and exporting).
  at::Tensor table_fp32() const;
  size_t bytes() const;

 private:
  at::Tensor table_;
  std::shared_ptr<const QuantizedMatrix> quant_;
  std::shared_ptr<const SplitTable> split_;
  int64_t vocab_ = 0;
  int64_t hidden_ = 0;
};

}  // namespace hearth
