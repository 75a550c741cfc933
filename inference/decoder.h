// The decoder-only transformer (Llama / Qwen2 / llama2.c): RMSNorm, RoPE, grouped-query
// attention with an optional KV cache, SwiGLU MLP. One code path serves generation and training.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "inference/embedding.h"
#include "inference/kv_cache.h"
#include "inference/linear.h"
#include "inference/model_config.h"
#include "inference/rope.h"

namespace hearth {

struct DecoderLayer {
  at::Tensor attn_norm;  // fp32 [hidden]
  at::Tensor mlp_norm;   // fp32 [hidden]
  Linear q, k, v, o, gate, up, down;

  // The seven projections with their PEFT / Hugging Face module names.
  std::vector<std::pair<const char*, Linear*>> projections();
};

struct ForwardInput {
  at::Tensor tokens;     // int64 [B, T]
  at::Tensor positions;  // int64 [B, T]; undefined: cache length + 0..T-1
  at::Tensor segments;   // int64 [B, T]; defined: attention stays within equal segment ids
  KVCache* cache = nullptr;
};

// What every block of one forward pass shares: rotary angles and the attention mask.
struct AttentionContext {
  at::Tensor cos, sin;  // [B, T, head_dim / 2]
  at::Tensor mask;      // additive fp32, broadcastable to [B, 1, 1, T, S]; undefined = no mask
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
  at::Tensor embed(const at::Tensor& tokens) const { return embedding_.lookup(tokens); }
  AttentionContext attention_context(const ForwardInput& input) const;
  at::Tensor block(int64_t layer, const at::Tensor& h, const AttentionContext& ctx) const;
  at::Tensor final_norm(const at::Tensor& h) const;
  // The pieces of block(), for a forward that batches the projections of several requests
  // (engine/batched_forward.h) and attends per request with the same code as a single one.
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  // silu(gate(n)) * up(n), the input of the down projection.
  at::Tensor gated_mlp_input(const DecoderLayer& layer, const at::Tensor& n) const;
  // Attention of projected q [B, T, heads, d], k and v [B, T, kv_heads, d] (before rotation):
  // rotates, appends k and v to ctx.cache if set, attends. Returns [B, T, heads * d], the input
  // of the output projection.
  at::Tensor attend(int64_t layer, at::Tensor q, at::Tensor k, at::Tensor v, const AttentionContext& ctx) const;

  const ModelConfig& config() const { return config_; }
  std::vector<DecoderLayer>& layers() { return layers_; }
  const std::vector<DecoderLayer>& layers() const { return layers_; }
  const Embedding& embedding() const { return embedding_; }
  const Linear& lm_head() const { return lm_head_; }
  Linear& lm_head() { return lm_head_; }
  const at::Tensor& final_norm_weight() const { return final_norm_; }
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
};

}  // namespace hearth
