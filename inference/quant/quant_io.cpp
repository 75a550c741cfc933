#include "inference/quant/quant_io.h"

#include "core/error.h"

namespace hearth {
namespace {

at::Tensor read_part(const SafetensorsFile& f, const std::string& name) {
  require(f.contains(name), ErrorCode::kCorruptFile, f.path().string() + " has no tensor \"" + name + "\" (a quantized weight part)");
  return f.tensor(name);
}

}  // namespace

void write_quantized(SafetensorsWriter& w, const std::string& prefix, const QuantizedMatrix& m) {
  validate_quantized(m, prefix);
  w.add(prefix + ".codes", m.codes);
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
