// The shape and hyper-parameters of a decoder model, read from a Hugging Face config.json or
// a llama2.c header, and written back as config.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace hearth {

enum class Architecture { kLlama, kQwen2 };

// Llama 3.x "llama3" rope_scaling: long wavelengths slowed by `factor`, short ones kept.
struct RopeScaling {
  bool enabled = false;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // Per-frequency divisors of the rotary inverse frequencies, as GGUF stores Llama 3 scaling
  // (rope_freqs.weight); empty = none. Applied instead of rope_scaling when set.
  std::vector<float> rope_freq_factors;
  bool tie_word_embeddings = false;
  bool attention_bias = false;    // q/k/v biases (Qwen2)
  bool rope_interleaved = false;  // llama2.c rotates adjacent pairs; HF rotates halves
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  // Parses config.json; fails naming the missing or invalid field.
  static ModelConfig from_hf_json(const Json& j, const std::string& what);
  Json to_hf_json() const;
  // Checks every invariant the decoder relies on (divisibility, positive sizes, limits).
  void validate(const std::string& what) const;
  // Parameters of the model as the checkpoint stores them (tied head counted once).
  int64_t parameter_count() const;
  std::string architecture_name() const;
};

}  // namespace hearth
