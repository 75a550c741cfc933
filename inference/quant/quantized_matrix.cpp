#include "inference/quant/quantized_matrix.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "inference/quant/gguf_blocks.h"
#include "inference/quant/int4_format.h"
#include "inference/quant/int8_format.h"
#include "inference/quant/nf4_format.h"
#include "inference/quant/row_tiles.h"

namespace hearth {
namespace {

size_t tensor_bytes(const at::Tensor& t) { return t.defined() ? t.numel() * t.element_size() : 0; }

std::string describe(at::ScalarType dtype, at::IntArrayRef shape) {
  std::ostringstream os;
  os << c10::toString(dtype) << " " << shape;
  return os.str();
}

void check_part(const at::Tensor& t, const std::string& name, at::ScalarType dtype, std::vector<int64_t> shape) {
  require(t.defined(), ErrorCode::kCorruptFile, name + " is missing");
  require(t.scalar_type() == dtype && t.sizes().vec() == shape, ErrorCode::kCorruptFile,
          name + ": expected " + describe(dtype, shape) + ", found " + describe(t.scalar_type(), t.sizes()));
  require(t.is_contiguous(), ErrorCode::kCorruptFile, name + " is not contiguous");
}

// Rows converted to float at a time: quantizing a 150k-row embedding must not hold a float copy
// of it (545 MB for Qwen2.5-0.5B) beside the mapped source.
constexpr int64_t kQuantizeChunkRows = 1024;

// Rows [r0, r0 + n) of the weight padded with zeros to whole blocks, as float; checked finite.
at::Tensor padded_rows(const at::Tensor& weight, int64_t r0, int64_t n, int64_t padded_cols) {
  at::Tensor w = weight.narrow(0, r0, n).to(at::kFloat).contiguous();
  if (padded_cols != w.size(1)) w = at::constant_pad_nd(w, {0, padded_cols - w.size(1)}, 0.0).contiguous();
  require(at::isfinite(w).all().item<bool>(), ErrorCode::kInvalidArgument, "quantize_matrix: the weight has NaN or infinite values");
  return w;
}

// Calls fn(first_block, float blocks of rows [r0, r0 + n)) chunk by chunk.
template <typename Fn>
void for_each_row_chunk(const QuantizedMatrix& m, const at::Tensor& weight, Fn&& fn) {
  for (int64_t r0 = 0; r0 < m.rows; r0 += kQuantizeChunkRows) {
    const int64_t n = std::min(kQuantizeChunkRows, m.rows - r0);
    at::Tensor w = padded_rows(weight, r0, n, m.padded_cols());
    fn(r0 * m.blocks_per_row(), n * m.blocks_per_row(), w.data_ptr<float>());
  }
}

void quantize_nf4(QuantizedMatrix& m, const at::Tensor& weight) {
  const int64_t nb = m.blocks_per_row(), nblocks = m.rows * nb, bs = m.block_size(), bb = quant_block_bytes(m.format);
  // Pass 1: every block's absmax, then their double quantization (groups span rows).
  std::vector<float> absmax(nblocks);
  for_each_row_chunk(m, weight, [&](int64_t b0, int64_t count, const float* src) {
    for (int64_t b = 0; b < count; ++b) {
      float a = 0.0f;
      for (int64_t i = 0; i < bs; ++i) a = std::max(a, std::fabs(src[b * bs + i]));
      absmax[b0 + b] = a;
    }
  });
  const int64_t groups = nf4_absmax_groups(m.format, m.rows, m.cols);
  m.absmax_codes = at::empty({nblocks}, at::kChar);
  m.absmax_scale = at::empty({groups}, at::kFloat);
  m.absmax_offset = at::empty({groups}, at::kFloat);
  nf4_quantize_absmax(absmax.data(), nblocks, m.absmax_codes.data_ptr<int8_t>(), m.absmax_scale.data_ptr<float>(),
                      m.absmax_offset.data_ptr<float>());
  // Pass 2: codes chosen against the reconstructed absmax the kernels will multiply by.
  m.codes = at::empty({m.rows, nb * bb}, at::kByte);
  const int8_t* ac = m.absmax_codes.data_ptr<int8_t>();
  const float *as = m.absmax_scale.data_ptr<float>(), *ao = m.absmax_offset.data_ptr<float>();
  uint8_t* dst = m.codes.data_ptr<uint8_t>();
  for_each_row_chunk(m, weight, [&](int64_t b0, int64_t count, const float* src) {
    at::parallel_for(0, count, 256, [&](int64_t c0, int64_t c1) {
      for (int64_t b = c0; b < c1; ++b) {
        nf4_quantize_block(src + b * bs, bs, nf4_absmax(ac, as, ao, b0 + b), dst + (b0 + b) * bb, bs);
      }
    });
  });
}

void quantize_int(QuantizedMatrix& m, const at::Tensor& weight) {
  const int64_t nb = m.blocks_per_row();
  const bool int4 = m.format == QuantFormat::kInt4;
  m.codes = at::empty({m.rows, nb * quant_block_bytes(m.format)}, int4 ? at::kByte : at::kChar);
  m.scales = at::empty({m.rows, nb}, at::kHalf);
  auto* dst = static_cast<uint8_t*>(m.codes.data_ptr());
  auto* sc = reinterpret_cast<uint16_t*>(m.scales.data_ptr<at::Half>());
  for_each_row_chunk(m, weight, [&](int64_t b0, int64_t count, const float* src) {
    at::parallel_for(0, count, 512, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b = b0 + c;
        if (int4) {
          int4_quantize_block(src + c * 32, 32, dst + b * 16, sc + b);
        } else {
          int8_quantize_block(src + c * 32, 32, reinterpret_cast<int8_t*>(dst) + b * 32, sc + b);
        }
      }
    });
  });
}

// GGUF formats: each row's blocks written by the format's quantize_row, straight into codes.
void quantize_gguf(QuantizedMatrix& m, const at::Tensor& weight) {
  using namespace gguf;
  const int64_t nb = m.blocks_per_row(), bb = quant_block_bytes(m.format), n = m.padded_cols();
  m.codes = at::empty({m.rows, nb * bb}, at::kByte);
  uint8_t* dst = m.codes.data_ptr<uint8_t>();
  for_each_row_chunk(m, weight, [&](int64_t b0, int64_t count, const float* src) {
    const int64_t r0 = b0 / nb, rows = count / nb;
    at::parallel_for(0, rows, 16, [&](int64_t c0, int64_t c1) {
      for (int64_t r = c0; r < c1; ++r) {
        const float* x = src + r * n;
        uint8_t* o = dst + (r0 + r) * nb * bb;
        switch (m.format) {
          case QuantFormat::kQ8_0: quantize_row_q8_0(x, reinterpret_cast<BlockQ8_0*>(o), n); break;
          case QuantFormat::kQ4_0: quantize_row_q4_0(x, reinterpret_cast<BlockQ4_0*>(o), n); break;
          case QuantFormat::kQ4_1: quantize_row_q4_1(x, reinterpret_cast<BlockQ4_1*>(o), n); break;
          case QuantFormat::kQ4_K: quantize_row_q4_k(x, reinterpret_cast<BlockQ4K*>(o), n); break;
          case QuantFormat::kQ5_K: quantize_row_q5_k(x, reinterpret_cast<BlockQ5K*>(o), n); break;
          case QuantFormat::kQ6_K: quantize_row_q6_k(x, reinterpret_cast<BlockQ6K*>(o), n); break;
          case QuantFormat::kF16: quantize_row_f16(x, reinterpret_cast<uint16_t*>(o), n); break;
          case QuantFormat::kBF16: quantize_row_bf16(x, reinterpret_cast<uint16_t*>(o), n); break;
          default: break;
        }
      }
    });
  });
}

}  // namespace

int64_t nf4_absmax_groups(QuantFormat format, int64_t rows, int64_t cols) {
  const int64_t bs = quant_block_size(format), nblocks = rows * ((cols + bs - 1) / bs);
  return (nblocks + kNF4AbsmaxGroup - 1) / kNF4AbsmaxGroup;
}

int64_t stored_row_code_bytes(QuantFormat format, int64_t cols) {
  const int64_t bs = quant_block_size(format), bb = quant_block_bytes(format), whole = cols / bs, tail = cols % bs;
  if (is_gguf_format(format) || tail == 0) return ((cols + bs - 1) / bs) * bb;
  const int64_t tail_bytes = format == QuantFormat::kInt8 ? tail : (tail + 1) / 2;
  return whole * bb + std::min(tail_bytes, bb);
}

int64_t stored_bytes(const QuantizedMatrix& m) {
  const int64_t padding = m.blocks_per_row() * quant_block_bytes(m.format) - stored_row_code_bytes(m.format, m.cols);
  return static_cast<int64_t>(m.storage_bytes()) - m.rows * padding;
}

int64_t packed_storage_bytes(QuantFormat format, int64_t rows, int64_t cols) {
  require(!is_gguf_format(format), ErrorCode::kInternal, "packed_storage_bytes is for Hearth's own formats");
  const int64_t blocks = rows * ((cols + quant_block_size(format) - 1) / quant_block_size(format));
  const int64_t codes = rows * stored_row_code_bytes(format, cols);
  // nf4: an int8 absmax code per block and two floats per absmax group; int4 / int8: an fp16 scale per block.
  if (is_nf4_format(format)) return codes + blocks + 2 * 4 * nf4_absmax_groups(format, rows, cols);
  return codes + 2 * blocks;
}

size_t QuantizedMatrix::storage_bytes() const {
  return tensor_bytes(codes) + tensor_bytes(scales) + tensor_bytes(absmax_codes) + tensor_bytes(absmax_scale) +
         tensor_bytes(absmax_offset);
}

double QuantizedMatrix::bits_per_weight() const {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  return n > 0 ? static_cast<double>(storage_bytes()) * 8.0 / n : 0.0;
}

void validate_quantized(const QuantizedMatrix& m, const std::string& what) {
  require(m.rows >= 0 && m.cols > 0, ErrorCode::kCorruptFile,
          what + ": invalid shape [" + std::to_string(m.rows) + ", " + std::to_string(m.cols) + "]");
  const int64_t nb = m.blocks_per_row();
  const at::ScalarType code_type = m.format == QuantFormat::kInt8 ? at::kChar : at::kByte;
  check_part(m.codes, what + ".codes", code_type, {m.rows, nb * quant_block_bytes(m.format)});
  if (is_gguf_format(m.format)) return;  // whole blocks, scales inside
  if (is_nf4_format(m.format)) {
    const int64_t groups = nf4_absmax_groups(m.format, m.rows, m.cols);
    check_part(m.absmax_codes, what + ".absmax_codes", at::kChar, {m.rows * nb});
    check_part(m.absmax_scale, what + ".absmax_scale", at::kFloat, {groups});
    check_part(m.absmax_offset, what + ".absmax_offset", at::kFloat, {groups});
  } else {
    check_part(m.scales, what + ".scales", at::kHalf, {m.rows, nb});
  }
}

namespace {

// The same checks as validate_quantized without building messages: view() runs per kernel call.
bool part_ok(const at::Tensor& t, at::ScalarType dtype, int64_t d0, int64_t d1) {
  if (!t.defined() || t.scalar_type() != dtype || !t.is_contiguous()) return false;
  if (d1 < 0) return t.dim() == 1 && t.size(0) == d0;
  return t.dim() == 2 && t.size(0) == d0 && t.size(1) == d1;
}

bool parts_ok(const QuantizedMatrix& m) {
  if (m.rows < 0 || m.cols <= 0) return false;
  const int64_t nb = m.blocks_per_row();
  if (is_gguf_format(m.format)) return part_ok(m.codes, at::kByte, m.rows, nb * quant_block_bytes(m.format));
  if (is_nf4_format(m.format)) {
    const int64_t groups = nf4_absmax_groups(m.format, m.rows, m.cols);
    return part_ok(m.codes, at::kByte, m.rows, nb * quant_block_bytes(m.format)) && part_ok(m.absmax_codes, at::kChar, m.rows * nb, -1) &&
           part_ok(m.absmax_scale, at::kFloat, groups, -1) && part_ok(m.absmax_offset, at::kFloat, groups, -1);
  }
  const at::ScalarType code_type = m.format == QuantFormat::kInt8 ? at::kChar : at::kByte;
  return part_ok(m.codes, code_type, m.rows, nb * quant_block_bytes(m.format)) && part_ok(m.scales, at::kHalf, m.rows, nb);
}

}  // namespace

std::shared_ptr<const QuantizedMatrix> with_row_tiles(std::shared_ptr<const QuantizedMatrix> m,
                                                      const std::function<void(int64_t r0, int64_t r1)>& rows_copied) {
  if (kernels_for(best_available_isa()).matmul_row_tiles == nullptr || is_gguf_format(m->format) || m->tiles) return m;
  auto tiled = std::make_shared<QuantizedMatrix>(*m);  // shares the tensors: their pointers stay valid
  tiled->tiles = std::make_shared<const RowTiles>(tile_rows(tiled->view(), rows_copied));
  return tiled;
}

PackedView QuantizedMatrix::view() const {
  if (!parts_ok(*this)) validate_quantized(*this, std::string("quantized ") + quant_format_name(format) + " matrix");
  PackedView v{};
  v.format = format;
  v.rows = rows;
  v.cols = cols;
  v.blocks_per_row = blocks_per_row();
  v.row_bytes = codes.size(1);
  v.codes = static_cast<const uint8_t*>(codes.data_ptr());
  if (is_gguf_format(format)) return v;
  if (is_nf4_format(format)) {
    v.absmax_codes = absmax_codes.data_ptr<int8_t>();
    v.absmax_scale = absmax_scale.data_ptr<float>();
    v.absmax_offset = absmax_offset.data_ptr<float>();
  } else {
    v.scales = reinterpret_cast<const uint16_t*>(scales.data_ptr<at::Half>());
  }
  return v;
}

QuantizedMatrix quantize_matrix(const at::Tensor& weight, QuantFormat format) {
  require(weight.dim() == 2 && weight.size(0) > 0 && weight.size(1) > 0, ErrorCode::kInvalidArgument,
          "quantize_matrix needs a non-empty 2-D weight");
  require(at::isFloatingType(weight.scalar_type()), ErrorCode::kInvalidArgument, "quantize_matrix needs a floating-point weight");
  QuantizedMatrix m;
  m.format = format;
  m.rows = weight.size(0);
  m.cols = weight.size(1);
  if (is_gguf_format(format)) {
    quantize_gguf(m, weight);
  } else if (is_nf4_format(format)) {
    quantize_nf4(m, weight);
  } else {
    quantize_int(m, weight);
  }
  return m;
}

at::Tensor dequantize_matrix(const QuantizedMatrix& m) {
  const PackedView v = m.view();
  at::Tensor out = at::empty({m.rows, m.padded_cols()}, at::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t ld = m.padded_cols();
  const auto& k = active_kernels();
  at::parallel_for(0, m.rows, 16, [&](int64_t r0, int64_t r1) {
    k.dequant_tile(v, r0, r1, 0, v.blocks_per_row, o + r0 * ld, ld);
  });
  return ld == m.cols ? out : out.narrow(1, 0, m.cols).contiguous();
}

}  // namespace hearth
