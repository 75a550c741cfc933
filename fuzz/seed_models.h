// Seeds for the model and adapter targets, cut from the real stories260K: a small model of its
// weights' corners as a llama2.c file and as Hugging Face / quantized folders, and adapters.
#pragma once
#include <filesystem>
#include <string>

#include "inference/model_config.h"
#include "inference/model_loader.h"
#include "inference/tensor_source.h"

namespace hearth::fuzz {

struct SmallModel {
  ModelConfig config;
  TensorMap tensors;
};

// One layer, hidden 16, two heads of 8 sharing one KV head, MLP 32, 32 tokens: the top-left
// corners of stories260K's matrices. Qwen2 adds q/k/v biases (corners of its norm weights).
SmallModel small_real_model(const TensorSource& stories, Architecture architecture);

// The model as a llama2.c v0 file (header, then every array in the file's order).
std::string llama2c_bytes(const SmallModel& model);

// A folder's files joined with kPartSeparator in the order the folder target reads them:
// config.json, then model.safetensors or model.safetensors.index.json and its shards.
std::string folder_seed(const std::filesystem::path& dir);

// The model's folder with its weights split over two shards and an index, written into `dir`.
void write_sharded_folder(const SmallModel& model, const std::filesystem::path& dir);

}  // namespace hearth::fuzz
