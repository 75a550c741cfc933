// GGUF models as Hearth models: each supported architecture is a mapping (metadata keys to a
// ModelConfig, tensor names to Hugging Face names); tensors come out as views of the mapped file:
// F32 dense, block formats as packed matrices the quantized kernels use as they are.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "inference/gguf_file.h"
#include "inference/model_config.h"
#include "inference/quant/quant_format.h"
#include "inference/tensor_source.h"

namespace hearth {

// What differs between architectures that share Hearth's decoder. Adding an architecture whose
// forward pass Hearth already computes is adding an entry (gguf_model.cpp, kArchitectures).
struct GgufArchitecture {
  const char* name;           // general.architecture
  Architecture architecture;  // Hearth's decoder variant
  bool rope_interleaved;      // llama.cpp rope "norm" (adjacent pairs) vs "neox" (halves)
  bool attention_bias;        // q/k/v biases are part of the architecture
};
// The mapping for general.architecture `name`, or nullptr.
const GgufArchitecture* gguf_architecture(const std::string& name);
// The mapping Hearth writes a model of `config` as ("llama" or "qwen2").
const GgufArchitecture& gguf_architecture_for(const ModelConfig& config);

// GGUF tensor names <-> Hugging Face names ("blk.3.attn_q.weight" <->
// "model.layers.3.self_attn.q_proj.weight"); nullopt for names outside the decoder's tensors.
std::optional<std::string> gguf_to_hf_name(const std::string& gguf_name);
std::optional<std::string> hf_to_gguf_name(const std::string& hf_name);

// ggml type <-> Hearth format for block formats (F32 is dense: no format).
std::optional<QuantFormat> quant_format_of_ggml(uint32_t ggml_type);
uint32_t ggml_type_of(QuantFormat format);

struct GgufModel {
  ModelConfig config;
  std::unique_ptr<TensorSource> tensors;
};

// The config from the architecture's metadata and the tensors under Hugging Face names.
// kUnsupported for an architecture, tensor type or feature Hearth does not compute (naming it);
// kCorruptFile for missing or inconsistent metadata.
GgufModel read_gguf_model(const std::shared_ptr<GgufFile>& file);

// The fingerprint of a GGUF base (adapters record it): tensor names, dims, ggml types and
// samples of the stored bytes, as for other bases (fingerprint.h) but over the blocks as stored.
std::string gguf_fingerprint(const GgufFile& file);

}  // namespace hearth
