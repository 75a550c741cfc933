#include "inference/linear_quantized.h"

#include "inference/quant/quant.h"
#include "inference/quant/row_tiles.h"

namespace hearth {

int64_t quantized_rows(const QuantizedMatrix& m) { return m.rows; }
int64_t quantized_cols(const QuantizedMatrix& m) { return m.cols; }
size_t quantized_bytes(const QuantizedMatrix& m) { return m.storage_bytes() + (m.tiles ? m.tiles->bytes() : 0); }

at::Tensor quantized_linear_forward(const at::Tensor& x, const std::shared_ptr<const QuantizedMatrix>& m) {
  return quant_linear(x.to(at::kFloat), m);
}

at::Tensor quantized_to_fp32(const QuantizedMatrix& m) { return dequantize_matrix(m); }

at::Tensor quantized_rows_fp32(const QuantizedMatrix& m, int64_t first, int64_t count) {
  // Row lookup dequantizes just the rows asked for, as for embeddings.
  return quant_embedding(m, at::arange(first, first + count, at::kLong));
}

at::Tensor quantized_embedding(const QuantizedMatrix& m, const at::Tensor& ids) { return quant_embedding(m, ids); }

std::shared_ptr<const QuantizedMatrix> quantize_for_load(const at::Tensor& weight, QuantFormat format) {
  return std::make_shared<const QuantizedMatrix>(quantize_matrix(weight, format));
}

}  // namespace hearth
