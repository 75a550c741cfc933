// The quantized weight formats Hearth computes with: its own (NF4 with double quantization,
// int4, int8) and GGUF's block formats (gguf_blocks.h), with their names and block geometry.
// Byte layouts are documented in docs/quantization.md and docs/gguf.md.
#pragma once
#include <cstdint>
#include <string>

namespace hearth {

// Hearth's formats keep codes and scales in separate tensors. The GGUF formats (kQ8_0 onwards)
// keep whole blocks, scales inside, in one byte tensor exactly as a GGUF file stores them, so a
// mapped GGUF tensor is used without a copy; kF16 / kBF16 are rows of 16-bit floats.
enum class QuantFormat { kNF4, kNF4_32, kInt4, kInt8, kQ8_0, kQ4_0, kQ4_1, kQ4_K, kQ5_K, kQ6_K, kF16, kBF16 };

// "nf4" | "nf4-32" | "int4" | "int8" (Hearth's formats, what --quant accepts); anything else is
// a kInvalidArgument error.
QuantFormat parse_quant_format(const std::string& name);
// Also the GGUF formats: "q8_0" | "q4_0" | "q4_1" | "q4_k" | "q5_k" | "q6_k" | "f16" | "bf16".
QuantFormat parse_any_quant_format(const std::string& name);
const char* quant_format_name(QuantFormat format);
// Whether the format stores whole GGUF blocks in its codes tensor (no separate scales).
bool is_gguf_format(QuantFormat format);
// nf4 and nf4-32: the NF4 grid with double-quantized block absmaxes (they differ in block width).
constexpr bool is_nf4_format(QuantFormat format) { return format == QuantFormat::kNF4 || format == QuantFormat::kNF4_32; }

// Weights per block along the input dimension: 64 for nf4, 32 for nf4-32, int4, int8, Q8_0,
// Q4_0 and Q4_1, 256 for the K formats, 1 for f16 / bf16.
int64_t quant_block_size(QuantFormat format);
// Bytes per block: of packed codes for Hearth's formats (32 nf4, 16 nf4-32, 16 int4, 32 int8); of the
// whole block for GGUF's (34 Q8_0, 18 Q4_0, 20 Q4_1, 144 Q4_K, 176 Q5_K, 210 Q6_K, 2 f16/bf16).
int64_t quant_block_bytes(QuantFormat format);

// NF4 double quantization: the fp32 block absmaxes are re-quantized to int8 in groups of this
// many blocks, each group with an fp32 scale and offset.
constexpr int64_t kNF4AbsmaxGroup = 256;

}  // namespace hearth
