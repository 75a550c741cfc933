// Folding an adapter into its base: merged weights W + sBA (LoRA) or m ⊙ (W + sBA)/||W + sBA||_row
// (DoRA), written as a full-precision Hugging Face folder or re-quantized, one weight at a time.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "adapters/adapter.h"
#include "inference/decoder.h"
#include "inference/gguf_file.h"
#include "inference/load_options.h"
#include "inference/quant/quant_format.h"

namespace hearth {

// How the merged model is written.
struct MergeOptions {
  at::ScalarType dtype = at::kFloat;        // full-precision output: kFloat or kBFloat16
  std::optional<QuantFormat> requantize;    // set: write a quantized folder in this format instead
  EmbeddingStorage embeddings = EmbeddingStorage::kInt8;  // the table and head of a quantized folder
};

struct MergeReport {
  int64_t merged_modules = 0;
  int64_t tensors_written = 0;
  // With `requantize`: ||Q(W') - W'||_F / ||W'||_F over all merged projection weights together,
  // how far re-quantizing moved them (a weight-space figure; perplexity is measured by the caller).
  std::optional<double> requantization_relative_error;
};

// Writes `out` (staged, then renamed into place) with the adapter merged into its projections:
// a Hugging Face folder (config.json, model.safetensors in options.dtype) or, with
// options.requantize, a quantized model folder (inference/quantized_model_files.h) whose source
// fingerprint is that of the merged full-precision weights; `tokenizer_files` are copied beside.
// Base weights held quantized are dequantized one matrix at a time. The safetensors writer keeps
// every output tensor until it writes the file, so peak memory is the output model plus the base.
// The same merged weights written as one GGUF file (gguf_export.h): projections, embedding table
// and head in `format` (nullopt: F32), the tokenizer from a GGUF base's metadata
// (`tokenizer_source`) or from `tokenizer_file`.
MergeReport merge_adapter_to_gguf(const Decoder& decoder, const Adapter& adapter, const std::filesystem::path& out,
                                  const GgufFile* tokenizer_source, const std::filesystem::path& tokenizer_file,
                                  std::optional<QuantFormat> format);

MergeReport merge_adapter_to_folder(const Decoder& decoder, const Adapter& adapter, const std::filesystem::path& out,
                                    const std::vector<std::filesystem::path>& tokenizer_files,
                                    const MergeOptions& options = {});

}  // namespace hearth
