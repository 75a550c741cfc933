// How a model is held in memory: compute precision of dense weights, and the 4/8-bit format
// of projections and embeddings when quantizing at load time.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <string>

#include "inference/quant/quant_format.h"

namespace hearth {

// Storage of the embedding table and output head in a quantized model.
enum class EmbeddingStorage { kInt8, kNF4, kNF4_32, kInt4, kBF16 };

struct LoadOptions {
  at::ScalarType compute_dtype = at::kFloat;  // dense weights: kFloat or kBFloat16
  std::optional<QuantFormat> quant;           // quantize projections at load time
  EmbeddingStorage embeddings = EmbeddingStorage::kInt8;
  // load_model gives quantized projections and head row tiles too, where the CPU's kernels read
  // them (faster prompts and batches, a second copy of the codes): off for bases that only train.
  bool row_tiles = true;
  // Before and after loading, drop the clean pages of shared libraries from resident memory
  // (LibTorch's start-up leaves ~100 MB; core/library_pages.h), and after, the heap that loading
  // freed. Off only to measure what it saves.
  bool release_library_pages = true;
};

// "fp32" | "bf16" -> dtype; anything else is kInvalidArgument.
at::ScalarType parse_compute_dtype(const std::string& name);
// "int8" | "nf4" | "nf4-32" | "int4" | "bf16".
EmbeddingStorage parse_embedding_storage(const std::string& name);
const char* embedding_storage_name(EmbeddingStorage storage);

}  // namespace hearth
