// Writing a model as a GGUF file llama.cpp loads: the architecture's metadata, tensors under
// GGUF names (q/k rows in llama's rotary layout), projections in a chosen block format, and the
// tokenizer; written to a temporary name and renamed into place.
#pragma once
#include <filesystem>
#include <optional>

#include "inference/gguf_file.h"
#include "inference/model_config.h"
#include "inference/quant/quant_format.h"
#include "inference/tensor_source.h"

namespace hearth {

struct GgufExportOptions {
  // Type of the 2-D weights (projections, embedding table, head); nullopt = F32. A matrix whose
  // rows are not whole blocks of the format is written F16, as llama-quantize falls back.
  std::optional<QuantFormat> format;
  std::string name = "hearth";  // general.name
};

struct GgufExportReport {
  int64_t tensors = 0;
  int64_t fallback_f16 = 0;  // matrices written F16 because their rows are not whole blocks
};

// `tensors` are the model's (Hugging Face names, in the layout `config` says: rope_interleaved
// or not), each read once. The tokenizer comes from `tokenizer_source` (a GGUF model's metadata)
// or `tokenizer_file` (gguf_tokenizer.h). kUnsupported for a model GGUF cannot express.
GgufExportReport write_gguf_model(const std::filesystem::path& out, const ModelConfig& config, const TensorSource& tensors,
                                  const GgufFile* tokenizer_source, const std::filesystem::path& tokenizer_file,
                                  const GgufExportOptions& options);

// Rows of a q/k projection (or bias) from the half-split rotary layout of Hugging Face to the
// interleaved one of llama.cpp's llama architecture (the inverse of permute_rotary_rows).
at::Tensor interleave_rotary_rows(const at::Tensor& weight, int64_t heads, int64_t head_dim);

}  // namespace hearth
