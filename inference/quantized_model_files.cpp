#include "inference/quantized_model_files.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "inference/fingerprint.h"
#include "inference/quant/quant.h"
#include "inference/split_table.h"

namespace hearth {

namespace fs = std::filesystem;

std::optional<QuantFormat> embedding_quant_format(EmbeddingStorage storage) {
  switch (storage) {
    case EmbeddingStorage::kNF4: return QuantFormat::kNF4;
    case EmbeddingStorage::kNF4_32: return QuantFormat::kNF4_32;
    case EmbeddingStorage::kInt4: return QuantFormat::kInt4;
    case EmbeddingStorage::kInt8: return QuantFormat::kInt8;
    case EmbeddingStorage::kBF16: return std::nullopt;
  }
  return std::nullopt;
}

EmbeddingStorage embedding_storage_of(QuantFormat format) {
  switch (format) {
    case QuantFormat::kNF4: return EmbeddingStorage::kNF4;
    case QuantFormat::kNF4_32: return EmbeddingStorage::kNF4_32;
    case QuantFormat::kInt4: return EmbeddingStorage::kInt4;
    case QuantFormat::kInt8: return EmbeddingStorage::kInt8;
    default: break;
  }
  fail(ErrorCode::kInternal, std::string("no embedding storage for the ") + quant_format_name(format) + " format");
}

QuantFormat QuantizationInfo::format_of(const std::string& prefix) const {
  const auto it = overrides.find(prefix);
  return it == overrides.end() ? format : it->second;
}

Json QuantizationInfo::to_json() const {
  Json j = {{"format", quant_format_name(format)},
            {"block_size", quant_block_size(format)},
            {"absmax_group", kNF4AbsmaxGroup},
            {"embeddings", embedding_storage_name(embeddings)},
            {"source_fingerprint", source_fingerprint}};
  if (table_split) j["table_split"] = quant_format_name(*table_split);
  if (!overrides.empty()) {
    Json o = Json::object();
    for (const auto& [prefix, f] : overrides) o[prefix] = quant_format_name(f);
    j["overrides"] = o;
  }
  if (!recipe.is_null()) j["recipe"] = recipe;
  return j;
}

std::optional<QuantizationInfo> QuantizationInfo::from_config(const Json& config, const std::string& what) {
  if (!config.is_object() || !config.contains("hearth_quantization")) return std::nullopt;
  const Json& q = config["hearth_quantization"];
  const std::string where = what + " hearth_quantization";
  json_reject_unknown_fields(q, {"format", "block_size", "absmax_group", "embeddings", "source_fingerprint", "overrides", "table_split", "recipe"},
                             where);
  QuantizationInfo info;
  const std::string format = json_get<std::string>(q, "format", where);
  try {
    info.format = parse_quant_format(format);
    info.embeddings = parse_embedding_storage(json_get<std::string>(q, "embeddings", where));
  } catch (const Error& e) {
    fail(ErrorCode::kCorruptFile, where + ": " + e.what());
  }
  require(json_get<int64_t>(q, "block_size", where) == quant_block_size(info.format), ErrorCode::kCorruptFile,
          where + ": block_size does not match the " + format + " format");
  info.source_fingerprint = json_get<std::string>(q, "source_fingerprint", where);
  if (q.contains("table_split")) {
    try {
      info.table_split = parse_quant_format(json_get<std::string>(q, "table_split", where));
    } catch (const Error& e) {
      fail(ErrorCode::kCorruptFile, where + ": table_split: " + e.what());
    }
    require(embedding_quant_format(info.embeddings).has_value(), ErrorCode::kCorruptFile,
            where + ": a split table needs packed embeddings (int8, nf4, nf4-32 or int4), not bf16");
  }
  if (q.contains("overrides")) {
    const Json& o = q["overrides"];
    require(o.is_object(), ErrorCode::kCorruptFile, where + ": overrides must be an object of tensor prefix -> format");
    for (const auto& [prefix, name] : o.items()) {
      require(name.is_string(), ErrorCode::kCorruptFile, where + ": overrides." + prefix + " must be a format name");
      try {
        info.overrides[prefix] = parse_quant_format(name.get<std::string>());
      } catch (const Error& e) {
        fail(ErrorCode::kCorruptFile, where + ": overrides." + prefix + ": " + e.what());
      }
    }
  }
  if (q.contains("recipe")) {
    require(q["recipe"].is_object(), ErrorCode::kCorruptFile, where + ": recipe must be an object");
    info.recipe = q["recipe"];
  }
  return info;
}

// One tensor of the source into the folder: as the caller prepared it, kept in full precision,
// or rounded to the format `info` gives it.
void write_model_tensor(SafetensorsWriter& writer, const std::string& name, const at::Tensor& t, const QuantizationInfo& info,
                        const PreparedWeights* prepared) {
  const bool matrix = t.dim() == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
  const std::string prefix = matrix ? name.substr(0, name.size() - 7) : name;
  if (prepared && prepared->split_tables.count(prefix)) {
    const SplitTable& m = *prepared->split_tables.at(prefix);
    require(m.rows == t.size(0) && m.cols == t.size(1), ErrorCode::kInternal, "prepared " + prefix + " has the wrong shape");
    write_split_table(writer, prefix, m);
    return;
  }
  if (prepared && prepared->matrices.count(prefix)) {
    const QuantizedMatrix& m = *prepared->matrices.at(prefix);
    require(m.rows == t.size(0) && m.cols == t.size(1), ErrorCode::kInternal, "prepared " + prefix + " has the wrong shape");
    write_quantized(writer, prefix, m);
    return;
  }
  if (prepared && prepared->tensors.count(name)) {
    writer.add(name, prepared->tensors.at(name).to(at::kFloat));
    return;
  }
  if (!matrix) {
    writer.add(name, t.to(at::kFloat));  // norms and biases stay fp32
    return;
  }
  const bool table = prefix == "model.embed_tokens" || prefix == "lm_head";
  require(!(table && info.table_split), ErrorCode::kInternal, "a split table's rows are chosen by its caller: prepare " + prefix);
  const std::optional<QuantFormat> format = table ? embedding_quant_format(info.embeddings) : info.format_of(prefix);
  if (!format) {
    writer.add(name, t.to(at::kBFloat16));
    return;
  }
  write_quantized(writer, prefix, quantize_matrix(t, *format));
}

void write_quantized_model(const fs::path& out, const ModelConfig& config, const TensorSource& tensors,
                           const QuantizationInfo& info, const std::vector<fs::path>& tokenizer_files,
                           const PreparedWeights* prepared) {
  StagedDirectory staged(out);
  SafetensorsWriter writer;
  writer.set_metadata("format", "hearth-quantized");
  FingerprintBuilder fingerprint;
  const bool needs_fingerprint = info.source_fingerprint.empty();
  for (const std::string& name : tensors.names()) {
    const at::Tensor t = tensors.get(name);
    write_model_tensor(writer, name, t, info, prepared);
    if (needs_fingerprint) fingerprint.add(name, t);
    // Whatever the writer still holds of `name` is re-read from the file when written: its pages
    // need not stay resident (qwen2.5-0.5b: 0.35 GB more at the end of a calibrated quantize).
    tensors.release(name);
  }
  writer.write(staged.path() / "model.safetensors");
  Json c = config.to_hf_json();
  QuantizationInfo written = info;
  if (needs_fingerprint) written.source_fingerprint = fingerprint.hex();
  c["hearth_quantization"] = written.to_json();
  write_file_atomic(staged.path() / "config.json", c.dump(2) + "\n");
  for (const fs::path& f : tokenizer_files) fs::copy_file(f, staged.path() / f.filename(), fs::copy_options::overwrite_existing);
  staged.commit();
}

}  // namespace hearth
