#include "inference/decoder.h"

#include <cmath>

#include "core/error.h"
#include "inference/decode_kernels.h"
#include "inference/linear_quantized.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/quant/row_tiles.h"

namespace hearth {

std::vector<std::pair<const char*, Linear*>> DecoderLayer::projections() {
  return {{"q_proj", &q}, {"k_proj", &k}, {"v_proj", &v}, {"o_proj", &o},
          {"gate_proj", &gate}, {"up_proj", &up}, {"down_proj", &down}};
}

std::vector<std::pair<const char*, const Linear*>> DecoderLayer::projections() const {
  return {{"q_proj", &q}, {"k_proj", &k}, {"v_proj", &v}, {"o_proj", &o},
          {"gate_proj", &gate}, {"up_proj", &up}, {"down_proj", &down}};
}

std::string DecoderLayer::module_path(const std::string& projection) {
  const bool mlp = projection == "gate_proj" || projection == "up_proj" || projection == "down_proj";
  return (mlp ? "mlp." : "self_attn.") + projection;
}

std::vector<std::pair<std::string, at::Tensor DecoderLayer::*>> DecoderLayer::norm_names(const ModelConfig& config) {
  std::vector<std::pair<std::string, at::Tensor DecoderLayer::*>> out = {{"input_layernorm.weight", &DecoderLayer::attn_norm}};
  if (config.sandwich_norms()) {
    out.push_back({"post_attention_layernorm.weight", &DecoderLayer::post_attn_norm});
    out.push_back({"pre_feedforward_layernorm.weight", &DecoderLayer::mlp_norm});
    out.push_back({"post_feedforward_layernorm.weight", &DecoderLayer::post_mlp_norm});
  } else {
    out.push_back({"post_attention_layernorm.weight", &DecoderLayer::mlp_norm});
  }
  if (config.qk_norm()) {
    out.push_back({"self_attn.q_norm.weight", &DecoderLayer::q_norm});
    out.push_back({"self_attn.k_norm.weight", &DecoderLayer::k_norm});
  }
  return out;
}

Decoder::Decoder(ModelConfig config, Embedding embedding, std::vector<DecoderLayer> layers, at::Tensor final_norm,
                 Linear lm_head)
    : config_(std::move(config)),
      embedding_(std::move(embedding)),
      layers_(std::move(layers)),
      final_norm_(std::move(final_norm)),
      lm_head_(std::move(lm_head)),
      rope_(config_),
      local_rope_(config_, config_.rope_local_theta) {
  require(static_cast<int64_t>(layers_.size()) == config_.num_layers, ErrorCode::kInternal, "layer count mismatch");
}

at::Tensor Decoder::rms_norm(const at::Tensor& x, const at::Tensor& stored) const {
  const at::Tensor weight = config_.norm_adds_one() ? stored + 1.0 : stored;
  // Generation runs the fused loop: per-op dispatch dominates a small model's decode step.
  if (can_fuse_for_inference(x, weight)) return fused_rms_norm(x, weight, config_.rms_norm_eps);
  return x * at::rsqrt(x.pow(2).mean(-1, true) + config_.rms_norm_eps) * weight;
}

at::Tensor Decoder::embed(const at::Tensor& tokens) const {
  at::Tensor e = embedding_.lookup(tokens);
  return config_.scales_embeddings() ? e * std::sqrt(double(config_.hidden_size)) : e;
}

namespace {

// Additive mask from a boolean "key visible" tensor.
at::Tensor additive(const at::Tensor& allowed) {
  return at::zeros(allowed.sizes(), at::kFloat).masked_fill(allowed.logical_not(), -INFINITY);
}

// Keys within `window` positions of each query, for keys of positions [first_key, s): query i
// (absolute past + i) sees key j when past + i - j < window. [t, s - first_key].
at::Tensor within_window(int64_t t, int64_t s, int64_t past, int64_t first_key, int64_t window) {
  const at::Tensor qpos = at::arange(past, past + t, at::kLong).unsqueeze(1);
  const at::Tensor kpos = at::arange(first_key, s, at::kLong).unsqueeze(0);
  return (qpos - kpos).lt(window);
}

// fused_rope over the first `rotary` dimensions of x [B, T, heads, d], the rest passed through.
at::Tensor fused_partial_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool interleaved, int64_t rotary) {
  const int64_t d = x.size(-1);
  if (rotary == d) return fused_rope(x, cos, sin, interleaved);
  return at::cat({fused_rope(x.narrow(-1, 0, rotary), cos, sin, interleaved), x.narrow(-1, rotary, d - rotary)}, -1);
}

}  // namespace

at::Tensor Decoder::final_norm(const at::Tensor& h) const { return rms_norm(h, final_norm_); }

AttentionContext Decoder::attention_context(const ForwardInput& input) const {
  require(input.tokens.dim() == 2, ErrorCode::kInvalidArgument, "tokens must be [batch, time]");
  const int64_t batch = input.tokens.size(0), t = input.tokens.size(1);
  const int64_t past = input.cache ? input.cache->length() : 0;
  AttentionContext ctx;
  ctx.cache = input.cache;
  at::Tensor positions = input.positions;
  if (!positions.defined()) positions = at::arange(past, past + t, at::kLong).unsqueeze(0).expand({batch, t});
  if (config_.long_rope.enabled) {
    // Past original_max_position_embeddings longrope switches to its long factors, which Hearth
    // does not compute (model_config.h): refuse rather than rotate with the wrong ones.
    const int64_t last = input.positions.defined() ? positions.max().item<int64_t>() : past + t - 1;
    require(last < config_.context_length(), ErrorCode::kInvalidArgument,
            "position " + std::to_string(last) + " is beyond this model's context of " + std::to_string(config_.context_length()) +
                " (longrope's short factors; Hearth does not compute the long ones)");
  }
  std::tie(ctx.cos, ctx.sin) = rope_.angles(positions);
  const int64_t s = past + t;
  at::Tensor allowed;  // [B, T, T] with segments, [T, S] without; undefined: all visible
  if (input.segments.defined()) {
    require(input.cache == nullptr, ErrorCode::kInvalidArgument, "segment masks are for training, without a cache");
    // Causal within each segment: key j is visible to query i when j <= i and both share a segment.
    at::Tensor causal = at::ones({t, t}, at::kBool).tril();
    at::Tensor same = input.segments.unsqueeze(2).eq(input.segments.unsqueeze(1));  // [B, T, T]
    allowed = same.logical_and(causal);
    ctx.mask = additive(allowed).view({batch, 1, 1, t, t});
  } else if (t > 1) {
    allowed = at::ones({t, s}, at::kBool).tril(past);
    ctx.mask = additive(allowed);
  }
  if (config_.sliding_window > 0) {
    std::tie(ctx.local_cos, ctx.local_sin) = local_rope_.angles(positions);
    // A cache keeps a local layer's last window - 1 positions only: its keys start there.
    const int64_t first_key = input.cache ? input.cache->local_start() : 0;
    at::Tensor local = within_window(t, s, past, first_key, config_.sliding_window);
    if (allowed.defined()) local = local.logical_and(first_key > 0 ? allowed.narrow(-1, first_key, s - first_key) : allowed);
    ctx.local_mask = input.segments.defined() ? additive(local).view({batch, 1, 1, t, t}) : additive(local);
  }
  return ctx;
}

at::Tensor Decoder::attention(const DecoderLayer& layer, int64_t index, const at::Tensor& x,
                              const AttentionContext& ctx) const {
  const int64_t batch = x.size(0), t = x.size(1);
  at::Tensor q = layer.q.forward(x).view({batch, t, config_.num_heads, config_.head_dim});
  at::Tensor k = layer.k.forward(x).view({batch, t, config_.num_kv_heads, config_.head_dim});
  at::Tensor v = layer.v.forward(x).view({batch, t, config_.num_kv_heads, config_.head_dim});
  return layer.o.forward(attend(index, q, k, v, ctx));
}

at::Tensor Decoder::attend(int64_t index, at::Tensor q, at::Tensor k, at::Tensor v, const AttentionContext& ctx) const {
  const int64_t batch = q.size(0), t = q.size(1);
  const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, d = config_.head_dim;
  const int64_t group = heads / kv_heads;
  if (config_.qk_norm()) {
    q = rms_norm(q, layers_[index].q_norm);
    k = rms_norm(k, layers_[index].k_norm);
  }
  const bool local = config_.is_local_layer(index);
  const Rope& rope = local ? local_rope_ : rope_;
  const at::Tensor& cos = local ? ctx.local_cos : ctx.cos;
  const at::Tensor& sin = local ? ctx.local_sin : ctx.sin;
  const at::Tensor& mask = local ? ctx.local_mask : ctx.mask;
  v = v.transpose(1, 2);
  const bool fused = can_fuse_for_inference(q, cos) && can_fuse_for_inference(k, sin);
  if (fused && batch == 1 && (t == 1 || !local) && ctx.cache && ctx.cache->dtype() == at::kFloat &&
      can_fuse_for_inference(v, cos)) {
    // Decode steps: each new position attends to the cache up to itself (a decode step's local
    // layer to its window's tail), one fused loop. A prompt's rows take it too, so each attends
    // exactly as a decode step at its position would; with the per-row int8 kernels for the
    // projections, a prompt split into parts (a shared prefix, then the rest) then answers
    // bitwise as the whole prompt does.
    q = fused_partial_rope(q, cos, sin, config_.rope_interleaved, rope.rotary_dims());
    k = fused_partial_rope(k, cos, sin, config_.rope_interleaved, rope.rotary_dims()).transpose(1, 2);
    std::tie(k, v) = ctx.cache->append(index, k, v);
    if (local && k.size(2) > config_.sliding_window) {
      const int64_t start = k.size(2) - config_.sliding_window;
      k = k.narrow(2, start, config_.sliding_window);
      v = v.narrow(2, start, config_.sliding_window);
    }
    return fused_decode_attention(q, k, v);
  }
  if (fused) {
    q = fused_partial_rope(q, cos, sin, config_.rope_interleaved, rope.rotary_dims()).transpose(1, 2);
    k = fused_partial_rope(k, cos, sin, config_.rope_interleaved, rope.rotary_dims()).transpose(1, 2);
  } else {
    q = rope.apply(q.transpose(1, 2), cos, sin);
    k = rope.apply(k.transpose(1, 2), cos, sin);
  }
  if (ctx.cache) std::tie(k, v) = ctx.cache->append(index, k, v);
  const int64_t s = k.size(2);
  // Grouped-query attention without repeating K/V: the `group` query heads sharing one KV
  // head are stacked along time, so one batched matmul per KV head covers them.
  at::Tensor qg = q.reshape({batch, kv_heads, group * t, d});
  at::Tensor scores = at::matmul(qg, k.transpose(2, 3)) * (1.0 / std::sqrt(double(d)));
  scores = scores.view({batch, kv_heads, group, t, s});
  if (mask.defined()) scores = scores + mask;
  at::Tensor probs = at::softmax(scores, -1).view({batch, kv_heads, group * t, s});
  return at::matmul(probs, v).view({batch, heads, t, d}).transpose(1, 2).reshape({batch, t, heads * d});
}

at::Tensor Decoder::block(int64_t index, const at::Tensor& h, const AttentionContext& ctx) const {
  const DecoderLayer& layer = layers_[index];
  return add_mlp(layer, add_attention_output(layer, h, attention(layer, index, rms_norm(h, layer.attn_norm), ctx)));
}

at::Tensor Decoder::add_attention_output(const DecoderLayer& layer, const at::Tensor& h, at::Tensor out) const {
  if (config_.sandwich_norms()) out = rms_norm(out, layer.post_attn_norm);
  return h + out;
}

at::Tensor Decoder::add_mlp(const DecoderLayer& layer, const at::Tensor& x) const {
  at::Tensor out = layer.down.forward(gated_mlp_input(layer, rms_norm(x, layer.mlp_norm)));
  if (config_.sandwich_norms()) out = rms_norm(out, layer.post_mlp_norm);
  return x + out;
}

at::Tensor Decoder::gated_mlp_input(const DecoderLayer& layer, const at::Tensor& n) const {
  if (config_.activation() == Activation::kGeluTanh) return at::gelu(layer.gate.forward(n), "tanh") * layer.up.forward(n);
  // Generation fuses silu(gate) * up into one loop. Anything else keeps the differentiable
  // expression exactly, so a checkpointed block's no-grad forward rounds as its recomputation.
  if (c10::InferenceMode::is_enabled()) {
    const at::Tensor gate = layer.gate.forward(n), up = layer.up.forward(n);
    if (can_fuse_for_inference(gate, up)) return fused_silu_mul(gate, up);
    return at::silu(gate) * up;
  }
  return at::silu(layer.gate.forward(n)) * layer.up.forward(n);
}

at::Tensor Decoder::hidden_states(const ForwardInput& input) const {
  AttentionContext ctx = attention_context(input);
  at::Tensor h = embed(input.tokens);
  for (int64_t l = 0; l < config_.num_layers; ++l) h = block(l, h, ctx);
  if (input.cache) input.cache->advance(input.tokens.size(1));
  return final_norm(h);
}

size_t Decoder::weight_bytes() const {
  size_t total = embedding_.bytes() + final_norm_.nbytes();
  for (const auto& layer : layers_) {
    for (const auto& [name, norm] : DecoderLayer::norm_names(config_)) total += (layer.*norm).nbytes();
    for (const Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down}) {
      total += l->weight_bytes();
    }
  }
  if (!head_is_embedding()) total += lm_head_.weight_bytes();  // a tied head shares the table's storage
  else if (lm_head_.is_quantized() && lm_head_.quantized_weight()->tiles && !embedding_.quantized_table()->tiles)
    total += lm_head_.quantized_weight()->tiles->bytes();  // embedding_.bytes() counts them when it reads them too
  return total;
}

bool Decoder::head_is_embedding() const {
  // The same codes (the head may be a copy of the table's matrix that carries row tiles too).
  if (lm_head_.is_quantized())
    return embedding_.quantized_table() != nullptr && lm_head_.quantized_weight()->codes.is_same(embedding_.quantized_table()->codes);
  if (lm_head_.is_split()) return lm_head_.split_weight() == embedding_.split_table();
  return lm_head_.dense_weight().is_same(embedding_.dense_table());
}

std::map<std::string, at::Tensor> weights_fp32(const Decoder& model) {
  std::map<std::string, at::Tensor> out;
  const ModelConfig& config = model.config();
  for (int64_t l = 0; l < config.num_layers; ++l) {
    const DecoderLayer& layer = model.layers()[l];
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    for (const auto& [name, linear] : layer.projections()) out[prefix + DecoderLayer::module_path(name) + ".weight"] = linear->weight_fp32();
    for (const auto& [name, member] : DecoderLayer::norm_names(config)) out[prefix + name] = (layer.*member).to(at::kFloat);
  }
  const Embedding& e = model.embedding();
  out["model.embed_tokens.weight"] = e.table_fp32();
  if (!model.head_is_embedding()) out["lm_head.weight"] = model.lm_head().weight_fp32();
  out["model.norm.weight"] = model.final_norm_weight().to(at::kFloat);
  return out;
}

}  // namespace hearth
