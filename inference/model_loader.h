// Opens whatever `--model` names: a Hugging Face folder, a GGUF file, a llama2.c file, or a
// folder with one llama2.c model and its tokenizer; returns the decoder and its tokenizer.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "inference/decoder.h"
#include "inference/gguf_file.h"
#include "inference/load_options.h"
#include "inference/quantized_model_files.h"
#include "inference/tensor_source.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

struct LoadedModel {
  std::shared_ptr<Decoder> decoder;
  std::shared_ptr<Tokenizer> tokenizer;
  std::string format;       // "huggingface" | "llama2c" | "quantized" | "gguf"
  std::string fingerprint;  // of the source weights (see fingerprint.h, gguf_model.h)
  std::shared_ptr<GgufFile> gguf;  // the file, for a GGUF model (its tokenizer metadata is copied on export)
  std::filesystem::path tokenizer_file;  // the tokenizer read (empty when it came from GGUF metadata)
};

// A model's files before any weight is converted: what `hearth quantize` and load_model read.
struct ModelSource {
  ModelConfig config;
  std::unique_ptr<TensorSource> tensors;
  std::optional<QuantizationInfo> quantization;  // set for quantized folders
  std::string format;                            // "huggingface" | "llama2c" | "quantized" | "gguf"
  std::shared_ptr<GgufFile> gguf;                // set for GGUF files (tokenizer and metadata inside)
  std::filesystem::path tokenizer;               // the tokenizer file to load
  std::vector<std::filesystem::path> tokenizer_files;  // files to copy into derived folders
  // Of the original full-precision weights (kept through quantization).
  std::string fingerprint() const;
};

ModelSource open_model_source(const std::filesystem::path& model, const std::filesystem::path& tokenizer = {});

// `tokenizer` overrides where the tokenizer is read from; empty means next to the model.
LoadedModel load_model(const std::filesystem::path& model, const LoadOptions& options,
                       const std::filesystem::path& tokenizer = {});

// Finds the tokenizer for a model path: tokenizer.json, tokenizer.bin or tok<N>.bin beside it.
std::filesystem::path find_tokenizer(const std::filesystem::path& model);

}  // namespace hearth
