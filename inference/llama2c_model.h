// llama2.c model files (the legacy v0 layout: a 7-integer header, then fp32 weights), read
// under Hugging Face tensor names: views of the file, but for q/k in the half-split layout.
#pragma once
#include <filesystem>
#include <memory>

#include "core/mapped_file.h"
#include "inference/model_config.h"
#include "inference/tensor_source.h"

namespace hearth {

struct Llama2cModel {
  ModelConfig config;
  std::unique_ptr<TensorMap> tensors;
};

// Validates the header against the file size before reading any weight.
Llama2cModel read_llama2c_model(const std::filesystem::path& path);
// The same over a mapping (MappedFile::from_bytes for bytes already in memory); the tensors
// view it and keep it alive.
Llama2cModel read_llama2c_model(std::shared_ptr<MappedFile> file);

// Reorders the rows of a q/k projection [heads * head_dim, in] from llama2.c's interleaved
// rotary pairs to the half-split layout of Hugging Face checkpoints.
at::Tensor permute_rotary_rows(const at::Tensor& weight, int64_t heads, int64_t head_dim);

}  // namespace hearth
