// Folding an adapter into its base: merged weights W + sBA (LoRA) or m ⊙ (W + sBA)/||W + sBA||_row
// (DoRA), written as a full-precision Hugging Face folder, one weight computed at a time.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <vector>

#include "adapters/adapter.h"
#include "inference/decoder.h"
#include "inference/quant/quant_format.h"

namespace hearth {

// How far re-quantizing the merged projections moves them: ||Q(W') - W'||_F / ||W'||_F over all
// merged projection weights together (a weight-space figure, not a perplexity).
struct RequantizationError {
  QuantFormat format = QuantFormat::kNF4;
  double relative_frobenius_error = 0;
};

struct MergeReport {
  int64_t merged_modules = 0;
  int64_t tensors_written = 0;
  std::vector<RequantizationError> requantization;
};

// Writes `out` (staged, then renamed into place): config.json, model.safetensors in `dtype`
// (kFloat or kBFloat16) with the adapter merged into its projections, and `tokenizer_files`
// copied beside. Base weights held quantized are dequantized one matrix at a time. The
// safetensors writer keeps every output tensor until it writes the file, so peak memory is the
// merged model in `dtype` plus the loaded base. `requantize`: formats to measure the error for.
MergeReport merge_adapter_to_folder(const Decoder& decoder, const Adapter& adapter, const std::filesystem::path& out,
                                    const std::vector<std::filesystem::path>& tokenizer_files, at::ScalarType dtype,
                                    const std::vector<QuantFormat>& requantize = {});

}  // namespace hearth
