// AWQ's folding: the input-channel scales a layer's projections are multiplied by are divided
// out of whatever produces that input (the two norms; v's rows for o; up's rows for down), so
// the quantized model computes the same function with no extra work at inference.
#pragma once
#include <ATen/ATen.h>

#include <array>

#include "inference/model_config.h"

namespace hearth {

// One layer's weights as fp32 copies, projections in DecoderLayer order (q, k, v, o, gate, up,
// down); biases undefined where the model has none.
struct LayerWeights {
  enum Projection { kQ, kK, kV, kO, kGate, kUp, kDown, kCount };
  at::Tensor attn_norm, mlp_norm;
  std::array<at::Tensor, kCount> weight, bias;
};

// Per-input-channel scales of a layer's four inputs.
struct ChannelScales {
  at::Tensor qkv;      // [hidden]: the attention norm's output, read by q, k and v
  at::Tensor o;        // [heads * head_dim]: equal across the query heads that share a KV head
  at::Tensor gate_up;  // [hidden]: the MLP norm's output, read by gate and up
  at::Tensor down;     // [intermediate]: silu(gate) * up, linear in up's rows
};

// Multiplies each projection's columns by its input's scales and divides the producer by them.
// o's scales must be tied within each group of query heads (v's rows are shared by the group).
void fold_channel_scales(LayerWeights& w, const ChannelScales& s, const ModelConfig& config);

// The per-KV-head view of o's scales: [kv_heads * head_dim], after checking they are tied.
at::Tensor kv_channel_scales(const at::Tensor& o_scales, const ModelConfig& config);

}  // namespace hearth
