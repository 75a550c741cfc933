// Quantized model folders: config.json (with a "hearth_quantization" entry naming the format,
// block sizes and the source weights' fingerprint), model.safetensors with packed weights and
// scales, and the tokenizer. Loading maps the file: packed weights are never copied.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "inference/load_options.h"
#include "inference/model_config.h"
#include "inference/tensor_source.h"

namespace hearth {

struct QuantizationInfo {
  QuantFormat format = QuantFormat::kNF4;
  EmbeddingStorage embeddings = EmbeddingStorage::kInt8;
  std::string source_fingerprint;

  Json to_json() const;
  // The "hearth_quantization" entry of a config.json, or nullopt when absent.
  static std::optional<QuantizationInfo> from_config(const Json& config, const std::string& what);
};

// Quantizes every weight of `tensors` tensor by tensor (projections in `info.format`, the
// embedding table and an untied head as info.embeddings, norms and biases fp32) and writes
// the folder atomically, copying `tokenizer_files` into it.
void write_quantized_model(const std::filesystem::path& out, const ModelConfig& config, const TensorSource& tensors,
                           const QuantizationInfo& info, const std::vector<std::filesystem::path>& tokenizer_files);

// Packed-format storage of the embedding table, or nullopt for bf16.
std::optional<QuantFormat> embedding_quant_format(EmbeddingStorage storage);

}  // namespace hearth
