// LoRA adapters as GGUF files llama.cpp loads with --lora: general.type "adapter", adapter.type
// "lora", adapter.lora.alpha, and per adapted projection "blk.N.<tensor>.weight.lora_a" / ".lora_b"
// as llama.cpp's convert_lora_to_gguf.py names and lays them out.
#pragma once
#include <filesystem>
#include <string>

#include "adapters/adapter.h"
#include "inference/model_config.h"

namespace hearth {

struct GgufLoraReport {
  int64_t modules = 0;
  double alpha = 0.0;  // written so that llama.cpp's alpha / rank equals the adapter's scale
};

// Writes `adapter`, trained over a base of `base_config`, to `out` atomically. B's rows of q/k
// are reordered when the base's rotary layout differs from the GGUF architecture's (an adapter
// trained over a Hugging Face llama base, exported for the same weights in GGUF). DoRA adapters
// are refused (kUnsupported): llama.cpp's format has no magnitude vector; merge them instead.
GgufLoraReport export_gguf_lora(const Adapter& adapter, const ModelConfig& base_config, const std::filesystem::path& out,
                                const std::string& name);

}  // namespace hearth
