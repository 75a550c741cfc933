#include "inference/quant/quant_format.h"

#include <cctype>

#include "core/error.h"

namespace hearth {

namespace {

constexpr QuantFormat kAllFormats[] = {QuantFormat::kNF4,  QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8, QuantFormat::kQ8_0,
                                       QuantFormat::kQ4_0, QuantFormat::kQ4_1, QuantFormat::kQ4_K, QuantFormat::kQ5_K,
                                       QuantFormat::kQ6_K, QuantFormat::kF16,  QuantFormat::kBF16};

}  // namespace

QuantFormat parse_quant_format(const std::string& name) {
  if (name == "nf4") return QuantFormat::kNF4;
  if (name == "nf4-32") return QuantFormat::kNF4_32;
  if (name == "int4") return QuantFormat::kInt4;
  if (name == "int8") return QuantFormat::kInt8;
  fail(ErrorCode::kInvalidArgument, "unknown quantization format \"" + name + "\"; expected nf4, nf4-32, int4 or int8");
}

QuantFormat parse_any_quant_format(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (QuantFormat f : kAllFormats) {
    if (lower == quant_format_name(f)) return f;
  }
  fail(ErrorCode::kInvalidArgument,
       "unknown quantization format \"" + name + "\"; expected nf4, nf4-32, int4, int8, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, f16 or bf16");
}

const char* quant_format_name(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4: return "nf4";
    case QuantFormat::kNF4_32: return "nf4-32";
    case QuantFormat::kInt4: return "int4";
    case QuantFormat::kInt8: return "int8";
    case QuantFormat::kQ8_0: return "q8_0";
    case QuantFormat::kQ4_0: return "q4_0";
    case QuantFormat::kQ4_1: return "q4_1";
    case QuantFormat::kQ4_K: return "q4_k";
    case QuantFormat::kQ5_K: return "q5_k";
    case QuantFormat::kQ6_K: return "q6_k";
    case QuantFormat::kF16: return "f16";
    case QuantFormat::kBF16: return "bf16";
  }
  return "invalid";
}

bool is_gguf_format(QuantFormat format) {
  return !is_nf4_format(format) && format != QuantFormat::kInt4 && format != QuantFormat::kInt8;
}

int64_t quant_block_size(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4: return 64;
    case QuantFormat::kQ4_K:
    case QuantFormat::kQ5_K:
    case QuantFormat::kQ6_K: return 256;
    case QuantFormat::kF16:
    case QuantFormat::kBF16: return 1;
    default: return 32;
  }
}

int64_t quant_block_bytes(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4: return 32;
    case QuantFormat::kNF4_32: return 16;
    case QuantFormat::kInt4: return 16;
    case QuantFormat::kInt8: return 32;
    case QuantFormat::kQ8_0: return 34;
    case QuantFormat::kQ4_0: return 18;
    case QuantFormat::kQ4_1: return 20;
    case QuantFormat::kQ4_K: return 144;
    case QuantFormat::kQ5_K: return 176;
    case QuantFormat::kQ6_K: return 210;
    case QuantFormat::kF16:
    case QuantFormat::kBF16: return 2;
  }
  fail(ErrorCode::kInternal, "quant_block_bytes: invalid format");
}

}  // namespace hearth
