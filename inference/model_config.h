// The shape and hyper-parameters of a decoder model, read from a Hugging Face config.json or
// a llama2.c header, and written back as config.json.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"

namespace hearth {

enum class Architecture { kLlama, kQwen2, kQwen3, kGemma3, kPhi3 };

// The MLP's gate activation: SwiGLU (Llama, Qwen) or GeGLU with tanh-approximated GELU (Gemma).
enum class Activation { kSilu, kGeluTanh };

// Llama 3.x "llama3" rope_scaling: long wavelengths slowed by `factor`, short ones kept.
struct RopeScaling {
  bool enabled = false;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// Phi-3's "longrope" scaling: each rotary frequency divided by a factor (short_factor within
// original_max_position_embeddings, long_factor beyond), cos and sin times an attention factor.
// Hearth computes the short factors and caps the context at original_max_position_embeddings
// (docs/gguf.md, "Phi-4-mini"); the long ones are kept so files round-trip.
struct LongRope {
  bool enabled = false;
  std::vector<float> short_factor, long_factor;  // rotary_dims / 2 each
  int64_t original_max_position_embeddings = 0;
  double attention_factor = 0;  // rope_scaling "attention_factor"; 0: derived from the lengths
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
  // Dimensions of each head that rotate (the first ones, half-split within them); 0 = head_dim.
  // Phi-4-mini: 96 of 128 (partial_rotary_factor 0.75).
  int64_t rotary_dims = 0;
  LongRope long_rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;    // q/k/v biases (Qwen2)
  bool rope_interleaved = false;  // llama2.c rotates adjacent pairs; HF rotates halves
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  // Gemma 3: local layers attend to the last `sliding_window` positions only and rotate with
  // their own base; every `sliding_window_pattern`-th layer is global. 0: all layers global.
  int64_t sliding_window = 0;
  int64_t sliding_window_pattern = 0;
  double rope_local_theta = 10000.0;

  // What the architecture implies (one place: the decoder, loaders and writers ask these).
  // RMSNorm over each head of q and k before rotation (Qwen3, Gemma 3).
  bool qk_norm() const { return architecture == Architecture::kQwen3 || architecture == Architecture::kGemma3; }
  // Gemma: attention and MLP outputs are normed before the residual add; norms scale by (1 + w),
  // so checkpoints store w - 1; embeddings are multiplied by sqrt(hidden); GeGLU.
  bool sandwich_norms() const { return architecture == Architecture::kGemma3; }
  bool norm_adds_one() const { return architecture == Architecture::kGemma3; }
  bool scales_embeddings() const { return architecture == Architecture::kGemma3; }
  Activation activation() const { return architecture == Architecture::kGemma3 ? Activation::kGeluTanh : Activation::kSilu; }
  // True for a sliding-window (local) layer.
  bool is_local_layer(int64_t layer) const {
    return sliding_window > 0 && (sliding_window_pattern == 0 || layer % sliding_window_pattern != sliding_window_pattern - 1);
  }

  // Phi-3: checkpoints fuse q, k, v into qkv_proj and gate, up into gate_up_proj (split at
  // load, fused again when written: inference/fused_projections.h).
  bool fused_projections() const { return architecture == Architecture::kPhi3; }
  int64_t rotary_dim() const { return rotary_dims > 0 ? rotary_dims : head_dim; }
  // Positions the decoder computes: longrope models stop at original_max_position_embeddings,
  // where the short factors end.
  int64_t context_length() const {
    return long_rope.enabled ? std::min(max_position_embeddings, long_rope.original_max_position_embeddings)
                             : max_position_embeddings;
  }
  // Longrope's scale of cos and sin: sqrt(1 + ln(max / original) / ln(original)), 1 without.
  double rope_attention_factor() const;

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
