// The quantized weight formats Hearth stores (NF4 with double quantization, int4, int8):
// their names and block geometry. Byte layouts are documented in docs/quantization.md.
#pragma once
#include <cstdint>
#include <string>

namespace hearth {

enum class QuantFormat { kNF4, kInt4, kInt8 };

// "nf4" | "int4" | "int8"; anything else is a kInvalidArgument error.
QuantFormat parse_quant_format(const std::string& name);
const char* quant_format_name(QuantFormat format);

// Weights per block along the input dimension: 64 for NF4, 32 for int4 and int8.
int64_t quant_block_size(QuantFormat format);
// Bytes of packed codes per block: 32 (NF4), 16 (int4), 32 (int8).
int64_t quant_block_bytes(QuantFormat format);

// NF4 double quantization: the fp32 block absmaxes are re-quantized to int8 in groups of this
// many blocks, each group with an fp32 scale and offset.
constexpr int64_t kNF4AbsmaxGroup = 256;

}  // namespace hearth
