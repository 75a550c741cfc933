#include "inference/quant/quant_format.h"

#include "core/error.h"

namespace hearth {

QuantFormat parse_quant_format(const std::string& name) {
  if (name == "nf4") return QuantFormat::kNF4;
  if (name == "int4") return QuantFormat::kInt4;
  if (name == "int8") return QuantFormat::kInt8;
  fail(ErrorCode::kInvalidArgument, "unknown quantization format \"" + name + "\"; expected nf4, int4 or int8");
}

const char* quant_format_name(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4: return "nf4";
    case QuantFormat::kInt4: return "int4";
    case QuantFormat::kInt8: return "int8";
  }
  return "invalid";
}

int64_t quant_block_size(QuantFormat format) { return format == QuantFormat::kNF4 ? 64 : 32; }

int64_t quant_block_bytes(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4: return 32;
    case QuantFormat::kInt4: return 16;
    case QuantFormat::kInt8: return 32;
  }
  fail(ErrorCode::kInternal, "quant_block_bytes: invalid format");
}

}  // namespace hearth
