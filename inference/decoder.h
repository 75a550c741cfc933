// The decoder-only transformer (Llama / Qwen2 / Qwen3 / Gemma 3 / Phi-3 / llama2.c): RMSNorm,
// RoPE (over part of each head for Phi-3), grouped-query attention with an optional KV cache, gated MLP; Qwen3's and Gemma's q/k norms,
// Gemma's sandwich norms, sliding-window layers and embedding scale where the config says so.
// One code path serves generation and training.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "inference/embedding.h"
#include "inference/kv_cache.h"
#include "inference/linear.h"
#include "inference/model_config.h"
#include "inference/rope.h"

namespace hearth {

struct DecoderLayer {
  at::Tensor attn_norm;  // fp32 [hidden]
  at::Tensor mlp_norm;   // fp32 [hidden], before the MLP
  // Only for architectures that have them (undefined otherwise): fp32 [head_dim] per-head norms
  // of q and k; fp32 [hidden] norms of the attention and MLP outputs (Gemma).
  at::Tensor q_norm, k_norm, post_attn_norm, post_mlp_norm;
  Linear q, k, v, o, gate, up, down;

  // The seven projections with their PEFT / Hugging Face module names.
  std::vector<std::pair<const char*, Linear*>> projections();
  std::vector<std::pair<const char*, const Linear*>> projections() const;
  // A projection's name in a checkpoint after "model.layers.N.": "q_proj" -> "self_attn.q_proj".
  static std::string module_path(const std::string& projection);
  // The norms `config`'s architecture has, with their Hugging Face names after
  // "model.layers.N." (Gemma's "pre_feedforward_layernorm" is mlp_norm; Llama's
  // "post_attention_layernorm" is mlp_norm, Gemma's is post_attn_norm).
  static std::vector<std::pair<std::string, at::Tensor DecoderLayer::*>> norm_names(const ModelConfig& config);
};

struct ForwardInput {
  at::Tensor tokens;     // int64 [B, T]
  at::Tensor positions;  // int64 [B, T]; undefined: cache length + 0..T-1
  at::Tensor segments;   // int64 [B, T]; defined: attention stays within equal segment ids
  KVCache* cache = nullptr;
};

// What every block of one forward pass shares: rotary angles and the attention mask.
struct AttentionContext {
  at::Tensor cos, sin;  // [B, T, rotary_dims / 2]
  at::Tensor mask;      // additive fp32, broadcastable to [B, 1, 1, T, S]; undefined = no mask
  // Sliding-window (local) layers: their own rotary base and a mask that also hides keys more
  // than the window behind (undefined when the model has none).
  at::Tensor local_cos, local_sin, local_mask;
  KVCache* cache = nullptr;
};

class Decoder {
 public:
  Decoder(ModelConfig config, Embedding embedding, std::vector<DecoderLayer> layers, at::Tensor final_norm,
          Linear lm_head);

  // Final-normed hidden states [B, T, hidden] (fp32). Advances the cache by T if given.
  at::Tensor hidden_states(const ForwardInput& input) const;
  // Logits [..., vocab] (fp32) for hidden states.
  at::Tensor logits(const at::Tensor& hidden) const { return lm_head_.forward(hidden); }
  // Logits for every position: hidden_states then logits.
  at::Tensor forward(const ForwardInput& input) const { return logits(hidden_states(input)); }

  // The pieces of hidden_states, for a trainer that checkpoints per block.
  // Embeddings of `tokens` (times sqrt(hidden) for Gemma).
  at::Tensor embed(const at::Tensor& tokens) const;
  AttentionContext attention_context(const ForwardInput& input) const;
  at::Tensor block(int64_t layer, const at::Tensor& h, const AttentionContext& ctx) const;
  at::Tensor final_norm(const at::Tensor& h) const;
  // The pieces of block(), for a forward that batches the projections of several requests
  // (engine/batched_forward.h) and attends per request with the same code as a single one.
  // RMSNorm with a weight as checkpoints store it (Gemma's scales by 1 + weight).
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  // act(gate(n)) * up(n), the input of the down projection.
  at::Tensor gated_mlp_input(const DecoderLayer& layer, const at::Tensor& n) const;
  // h plus the attention output `out` of `layer` (normed first where the architecture says so).
  at::Tensor add_attention_output(const DecoderLayer& layer, const at::Tensor& h, at::Tensor out) const;
  // x plus the MLP of `layer` over x (pre-norm, and post-norm where the architecture says so).
  at::Tensor add_mlp(const DecoderLayer& layer, const at::Tensor& x) const;
  // Attention of projected q [B, T, heads, d], k and v [B, T, kv_heads, d] (before q/k norms and
  // rotation): norms and rotates, appends k and v to ctx.cache if set, attends (within the window
  // on a local layer). Returns [B, T, heads * d], the input of the output projection.
  at::Tensor attend(int64_t layer, at::Tensor q, at::Tensor k, at::Tensor v, const AttentionContext& ctx) const;

  const ModelConfig& config() const { return config_; }
  std::vector<DecoderLayer>& layers() { return layers_; }
  const std::vector<DecoderLayer>& layers() const { return layers_; }
  const Embedding& embedding() const { return embedding_; }
  Embedding& embedding() { return embedding_; }
  const Linear& lm_head() const { return lm_head_; }
  Linear& lm_head() { return lm_head_; }
  const at::Tensor& final_norm_weight() const { return final_norm_; }
  // The output head is the embedding table itself (one storage), as in tied checkpoints.
  bool head_is_embedding() const;
  const Rope& rope() const { return rope_; }
  // Bytes of all weights as held in memory (mapped or owned).
  size_t weight_bytes() const;

 private:
  at::Tensor attention(const DecoderLayer& layer, int64_t index, const at::Tensor& x, const AttentionContext& ctx) const;

  ModelConfig config_;
  Embedding embedding_;
  std::vector<DecoderLayer> layers_;
  at::Tensor final_norm_;
  Linear lm_head_;
  Rope rope_;
  Rope local_rope_;  // sliding-window layers' base (unused without them)
};

// Every weight of a model as fp32 tensors by checkpoint name ("model.layers.0.mlp.up_proj.weight",
// "model.norm.weight", ...): quantized matrices dequantized (transient copies), the table, and
// an untied head as "lm_head.weight". Biases are left out.
std::map<std::string, at::Tensor> weights_fp32(const Decoder& model);

}  // namespace hearth
