#include "inference/quant/quant_io.h"

#include <cstring>

#include "core/error.h"

namespace hearth {
namespace {

at::Tensor read_part(const SafetensorsFile& f, const std::string& name) {
  require(f.contains(name), ErrorCode::kCorruptFile, f.path().string() + " has no tensor \"" + name + "\" (a quantized weight part)");
  return f.tensor(name);
}

// How quantize_matrix pads a partial block: the code of a zero weight (NF4's 0 is value 7 of
// the table, int4 stores q + 8, int8 q).
uint8_t zero_code(QuantFormat format) {
  if (is_nf4_format(format)) return 7;
  return format == QuantFormat::kInt4 ? 8 : 0;
}

// The 4-bit layouts hold weight j of a block in the low nibble of byte j for the block's first
// half, in the high nibble of byte j - half for the second.
uint8_t code_of(const uint8_t* block, int64_t half, int64_t j) {
  return j < half ? block[j] & 0xF : block[j - half] >> 4;
}
void set_code(uint8_t* block, int64_t half, int64_t j, uint8_t code) {
  if (j < half) block[j] = uint8_t((block[j] & 0xF0) | code);
  else block[j - half] = uint8_t((block[j - half] & 0x0F) | (code << 4));
}

// m's codes as a file stores them: a partial last block without its padding
// (stored_row_code_bytes), the whole blocks as they are.
at::Tensor stored_codes(const QuantizedMatrix& m) {
  const int64_t padded = m.codes.size(1), stored = stored_row_code_bytes(m.format, m.cols);
  if (stored == padded) return m.codes;
  const int64_t bb = quant_block_bytes(m.format), whole = (m.cols / m.block_size()) * bb, tail = m.cols % m.block_size();
  const at::Tensor src = m.codes.contiguous();
  at::Tensor out = at::empty({m.rows, stored}, src.options());
  for (int64_t r = 0; r < m.rows; ++r) {
    const uint8_t* s = static_cast<const uint8_t*>(src.data_ptr()) + r * padded;
    uint8_t* d = static_cast<uint8_t*>(out.data_ptr()) + r * stored;
    std::memcpy(d, s, whole);
    if (m.format == QuantFormat::kInt8) {
      std::memcpy(d + whole, s + whole, tail);
      continue;
    }
    for (int64_t j = 0; j < tail; j += 2) {
      const uint8_t high = j + 1 < tail ? code_of(s + whole, bb, j + 1) : zero_code(m.format);
      d[whole + j / 2] = uint8_t(code_of(s + whole, bb, j) | (high << 4));
    }
  }
  return out;
}

// The inverse: a file's codes with a partial last block stored unpadded, padded as the kernels
// read them (a copy; whole-block matrices stay views of the file).
at::Tensor padded_codes(const at::Tensor& stored, QuantFormat format, int64_t rows, int64_t cols) {
  const int64_t bs = quant_block_size(format), bb = quant_block_bytes(format), nb = (cols + bs - 1) / bs;
  const int64_t whole = (cols / bs) * bb, tail = cols % bs, width = stored.size(1);
  const uint8_t pad = format == QuantFormat::kInt8 ? 0 : uint8_t(zero_code(format) | (zero_code(format) << 4));
  at::Tensor out = at::full({rows, nb * bb}, pad, stored.options().dtype(at::kByte)).to(stored.scalar_type());
  const at::Tensor src = stored.contiguous();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* s = static_cast<const uint8_t*>(src.data_ptr()) + r * width;
    uint8_t* d = static_cast<uint8_t*>(out.data_ptr()) + r * nb * bb;
    std::memcpy(d, s, whole);
    if (format == QuantFormat::kInt8) {
      std::memcpy(d + whole, s + whole, tail);
      continue;
    }
    for (int64_t j = 0; j < tail; ++j) set_code(d + whole, bb, j, uint8_t((s[whole + j / 2] >> (4 * (j % 2))) & 0xF));
  }
  return out;
}

}  // namespace

void write_quantized(SafetensorsWriter& w, const std::string& prefix, const QuantizedMatrix& m) {
  validate_quantized(m, prefix);
  w.add(prefix + ".codes", stored_codes(m));
  if (is_gguf_format(m.format)) return;  // whole blocks, scales inside
  if (is_nf4_format(m.format)) {
    w.add(prefix + ".absmax_codes", m.absmax_codes);
    w.add(prefix + ".absmax_scale", m.absmax_scale);
    w.add(prefix + ".absmax_offset", m.absmax_offset);
  } else {
    w.add(prefix + ".scales", m.scales);
  }
}

QuantizedMatrix read_quantized(const SafetensorsFile& f, const std::string& prefix, QuantFormat format, int64_t rows,
                               int64_t cols) {
  QuantizedMatrix m;
  m.format = format;
  m.rows = rows;
  m.cols = cols;
  m.codes = read_part(f, prefix + ".codes");
  // A partial last block stored unpadded (folders written since session 42; older ones padded it).
  const int64_t stored = stored_row_code_bytes(format, cols);
  const at::ScalarType code_type = format == QuantFormat::kInt8 ? at::kChar : at::kByte;
  if (m.codes.dim() == 2 && m.codes.size(0) == rows && m.codes.size(1) == stored && m.codes.scalar_type() == code_type &&
      stored != ((cols + quant_block_size(format) - 1) / quant_block_size(format)) * quant_block_bytes(format))
    m.codes = padded_codes(m.codes, format, rows, cols);
  if (is_gguf_format(format)) {
    // nothing else: the blocks hold their scales
  } else if (is_nf4_format(format)) {
    m.absmax_codes = read_part(f, prefix + ".absmax_codes");
    // One float per 256 blocks, read with every block: copied, since a read of the mapping maps
    // whole page-cache folios around it, released codes of other projections with them.
    m.absmax_scale = read_part(f, prefix + ".absmax_scale").clone();
    m.absmax_offset = read_part(f, prefix + ".absmax_offset").clone();
  } else {
    m.scales = read_part(f, prefix + ".scales");
  }
  validate_quantized(m, f.path().string() + ": " + prefix);
  return m;
}

}  // namespace hearth
