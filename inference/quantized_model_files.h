// Quantized model folders: config.json (with a "hearth_quantization" entry naming the format,
// block sizes and the source weights' fingerprint), model.safetensors with packed weights and
// scales, and the tokenizer. Loading maps the file: packed weights are never copied.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "inference/load_options.h"
#include "inference/model_config.h"
#include "inference/tensor_source.h"

namespace hearth {

struct QuantizedMatrix;
struct SplitTable;

struct QuantizationInfo {
  QuantFormat format = QuantFormat::kNF4;
  EmbeddingStorage embeddings = EmbeddingStorage::kInt8;
  std::string source_fingerprint;
  // Projections stored in another format than `format` (mixed precision), by tensor prefix
  // ("model.layers.3.mlp.down_proj"). Folders written before mixed precision have none.
  std::map<std::string, QuantFormat> overrides;
  // When set, the table (and an untied head) is a split table (split_table.h): its frequent
  // rows in this format, the others in `embeddings`.
  std::optional<QuantFormat> table_split;
  // How the folder was made (method, calibration, bit budget; see calibrated_quantize.h), or
  // null for plain rounding. Recorded for people and tools; loading does not depend on it.
  Json recipe;

  // The format of the projection stored under `prefix`.
  QuantFormat format_of(const std::string& prefix) const;
  Json to_json() const;
  // The "hearth_quantization" entry of a config.json, or nullopt when absent.
  static std::optional<QuantizationInfo> from_config(const Json& config, const std::string& what);
};

// Weights already quantized (or changed) by a calibrated method, which the writer takes
// instead of rounding the source's: packed matrices by prefix, other tensors by name.
struct PreparedWeights {
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> matrices;
  std::map<std::string, std::shared_ptr<const SplitTable>> split_tables;  // by prefix, when info.table_split
  std::map<std::string, at::Tensor> tensors;  // fp32 (e.g. norms with AWQ scales folded in)
};

// Quantizes every weight of `tensors` tensor by tensor (projections in `info.format_of`, the
// embedding table and an untied head as info.embeddings, norms and biases fp32) and writes
// the folder atomically, copying `tokenizer_files` into it. What `prepared` holds is written
// as it is instead.
void write_quantized_model(const std::filesystem::path& out, const ModelConfig& config, const TensorSource& tensors,
                           const QuantizationInfo& info, const std::vector<std::filesystem::path>& tokenizer_files,
                           const PreparedWeights* prepared = nullptr);

// Packed-format storage of the embedding table, or nullopt for bf16.
std::optional<QuantFormat> embedding_quant_format(EmbeddingStorage storage);
// The inverse for Hearth's formats (nf4, nf4-32, int4, int8).
EmbeddingStorage embedding_storage_of(QuantFormat format);

}  // namespace hearth
