// A frozen linear layer y = W x + b whose weight is dense (fp32 / bf16) or packed 4/8-bit,
// with one adapter slot. The weight never receives gradients; its input does.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <string>

#include "inference/linear_adapter.h"

namespace hearth {

struct QuantizedMatrix;
struct SplitTable;

class Linear {
 public:
  Linear() = default;
  // A dense weight [out, in] in fp32 or bf16; the tensor is used as is (no copy).
  static Linear dense(at::Tensor weight, at::Tensor bias = {});
  static Linear quantized(std::shared_ptr<const QuantizedMatrix> weight, at::Tensor bias = {});
  // An LM head whose rows are stored in two formats (split_table.h); no bias.
  static Linear split(std::shared_ptr<const SplitTable> weight);

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool is_quantized() const { return quant_ != nullptr; }
  bool is_split() const { return split_ != nullptr; }
  // Neither quantized nor split: dense_weight() holds the weight.
  bool is_dense() const { return weight_.defined(); }
  bool defined() const { return in_ > 0; }
  const at::Tensor& dense_weight() const { return weight_; }
  const std::shared_ptr<const QuantizedMatrix>& quantized_weight() const { return quant_; }
  const std::shared_ptr<const SplitTable>& split_weight() const { return split_; }
  const at::Tensor& bias() const { return bias_; }

  // x [..., in] (fp32) -> [..., out] (fp32): the base output, then the adapter if one is set.
  at::Tensor forward(const at::Tensor& x) const;
  // W x without bias or adapter, fp32 in and out; differentiable with respect to x.
  at::Tensor base_matmul(const at::Tensor& x) const;
  // The weight as fp32 [out, in]: a transient copy for merging and checks, never kept.
  at::Tensor weight_fp32() const;
  // Rows [first, first + count) of the weight as fp32 [count, in]: a view of an fp32 weight,
  // else a transient copy (a quantized weight dequantizes only these rows).
  at::Tensor weight_rows_fp32(int64_t first, int64_t count) const;
  // ||W_i||_2 for every output row i, fp32 [out]; computed once (tile by tile) and cached.
  at::Tensor weight_row_norms() const;
  // Bytes the weight and bias occupy in memory (a quantized weight's row tiles included).
  size_t weight_bytes() const;

  void set_adapter(std::shared_ptr<const LinearAdapter> adapter) { adapter_ = std::move(adapter); }
  const std::shared_ptr<const LinearAdapter>& adapter() const { return adapter_; }

 private:
  at::Tensor weight_;
  std::shared_ptr<const QuantizedMatrix> quant_;
  std::shared_ptr<const SplitTable> split_;
  at::Tensor bias_;
  int64_t in_ = 0;
  int64_t out_ = 0;
  std::shared_ptr<const LinearAdapter> adapter_;
  struct NormCache {
    std::once_flag once;
    at::Tensor norms;
  };
  std::shared_ptr<NormCache> norms_ = std::make_shared<NormCache>();
};

}  // namespace hearth
