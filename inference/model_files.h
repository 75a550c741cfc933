// Writing Hugging Face model folders: llama2.c conversion, and the seeded random models with
// the exact shapes of real checkpoints that speed and memory are measured on.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "inference/model_config.h"
#include "inference/tensor_source.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

// Writes config.json + model.safetensors for `tensors` (converted to `dtype`) into the existing
// folder `dir`, and copies `tokenizer_files` beside them. Callers stage `dir` (atomic_file.h).
void write_hf_files(const std::filesystem::path& out, const ModelConfig& config, const TensorSource& tensors,
                     const std::vector<std::filesystem::path>& tokenizer_files, at::ScalarType dtype);

// A llama2.c model (file or folder with its tokenizer) as a Hugging Face folder: rotary rows
// of q/k permuted to the half-split layout, fp32 weights, the tokenizer copied alongside.
void convert_llama2c_to_hf(const std::filesystem::path& in, const std::filesystem::path& out,
                           const std::filesystem::path& tokenizer = {});

// The config of a known checkpoint shape (preset_names()); tiny, tiny-qwen3 and tiny-gemma3
// are small models of those architectures' structure, for tests.
std::string preset_names();
ModelConfig preset_config(const std::string& arch);

// A Hugging Face folder with preset_config(arch)'s exact tensor shapes and seeded N(0, 0.02)
// bf16 weights (norms 1), and the real tokenizer where its vocabulary fits (Qwen, Llama 3),
// else a generated vocabulary of the right size.
void init_random_model(const std::string& arch, uint64_t seed, const std::filesystem::path& out);

// The shape of a Llama to pretrain from scratch (`hearth model init --arch custom`); the
// vocabulary comes from the tokenizer it is paired with.
struct CustomModelShape {
  int64_t layers = 4, hidden = 128, heads = 4, kv_heads = 4, intermediate = 344, max_positions = 512;
};

// A Llama config of `shape` for `tokenizer` (vocabulary size, BOS and EOS taken from it; tied
// embeddings, rope theta 10000, head_dim = hidden / heads). kInvalidArgument for a bad shape.
ModelConfig custom_config(const CustomModelShape& shape, const Tokenizer& tokenizer);

// A Hugging Face folder with custom_config's shapes, seeded N(0, 0.02) fp32 weights (norms 1)
// and a copy of the tokenizer found in `tokenizer_from` (a model folder or a tokenizer file).
void init_custom_model(const CustomModelShape& shape, const std::filesystem::path& tokenizer_from, uint64_t seed,
                       const std::filesystem::path& out);

}  // namespace hearth
