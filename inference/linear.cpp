#include "inference/linear.h"

#include "core/error.h"
#include "inference/linear_quantized.h"
#include "inference/split_table.h"

namespace hearth {

Linear Linear::dense(at::Tensor weight, at::Tensor bias) {
  require(weight.dim() == 2, ErrorCode::kInvalidArgument, "a linear weight must be 2-D");
  require(weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kBFloat16, ErrorCode::kInvalidArgument,
          "dense linear weights must be fp32 or bf16");
  Linear l;
  l.out_ = weight.size(0);
  l.in_ = weight.size(1);
  l.weight_ = std::move(weight);
  if (bias.defined()) l.bias_ = bias.to(at::kFloat);
  return l;
}

Linear Linear::quantized(std::shared_ptr<const QuantizedMatrix> weight, at::Tensor bias) {
  Linear l;
  l.out_ = quantized_rows(*weight);
  l.in_ = quantized_cols(*weight);
  l.quant_ = std::move(weight);
  if (bias.defined()) l.bias_ = bias.to(at::kFloat);
  return l;
}

Linear Linear::split(std::shared_ptr<const SplitTable> weight) {
  Linear l;
  l.out_ = weight->rows;
  l.in_ = weight->cols;
  l.split_ = std::move(weight);
  return l;
}

at::Tensor Linear::base_matmul(const at::Tensor& x) const {
  if (quant_) return quantized_linear_forward(x, quant_);
  if (split_) return split_table_matmul(*split_, x);
  if (x.numel() == in_ && x.dim() >= 1) {
    // One row (a decode step): a matrix-vector product. at::linear would run a GEMM with
    // M = 1, which makes the BLAS pack (copy) the whole weight on every call (measured: over
    // half the fp32 decode time went to that copy).
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out_;
    at::Tensor v = x.reshape({in_});
    at::Tensor y = weight_.scalar_type() == at::kBFloat16 ? at::mv(weight_, v.to(at::kBFloat16)).to(at::kFloat)
                                                          : at::mv(weight_, v);
    return y.view(shape);
  }
  if (weight_.scalar_type() == at::kBFloat16) return at::linear(x.to(at::kBFloat16), weight_).to(at::kFloat);
  return at::linear(x, weight_);
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  at::Tensor y = base_matmul(x);
  if (bias_.defined()) y = y + bias_;
  if (adapter_) y = adapter_->apply(x, y, *this);
  return y;
}

at::Tensor Linear::weight_fp32() const {
  if (quant_) return quantized_to_fp32(*quant_);
  if (split_) return split_table_rows_fp32(*split_, 0, out_);
  return weight_.to(at::kFloat);
}

at::Tensor Linear::weight_rows_fp32(int64_t first, int64_t count) const {
  require(first >= 0 && count >= 0 && first + count <= out_, ErrorCode::kInvalidArgument, "weight rows out of range");
  if (quant_) return quantized_rows_fp32(*quant_, first, count);
  if (split_) return split_table_rows_fp32(*split_, first, count);
  return weight_.narrow(0, first, count).to(at::kFloat);
}

at::Tensor Linear::weight_row_norms() const {
  std::call_once(norms_->once, [&] {
    at::NoGradGuard no_grad;
    // A few hundred rows at a time, so a quantized weight is never dequantized whole.
    constexpr int64_t kRowsPerTile = 256;
    at::Tensor norms = at::empty({out_}, at::kFloat);
    for (int64_t r = 0; r < out_; r += kRowsPerTile) {
      const int64_t n = std::min(kRowsPerTile, out_ - r);
      at::Tensor tile = is_dense() ? weight_.narrow(0, r, n).to(at::kDouble) : weight_rows_fp32(r, n);
      norms.narrow(0, r, n).copy_(tile.to(at::kDouble).pow(2).sum(1).sqrt());
    }
    norms_->norms = norms;
  });
  return norms_->norms;
}

size_t Linear::weight_bytes() const {
  size_t total = bias_.defined() ? bias_.nbytes() : 0;
  if (quant_) return total + quantized_bytes(*quant_);
  if (split_) return total + split_table_bytes(*split_);
  return total + weight_.nbytes();
}

}  // namespace hearth
