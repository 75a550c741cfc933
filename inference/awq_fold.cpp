#include "inference/awq_fold.h"

#include "core/error.h"

namespace hearth {

at::Tensor kv_channel_scales(const at::Tensor& o_scales, const ModelConfig& config) {
  const int64_t kv = config.num_kv_heads, group = config.num_heads / kv, d = config.head_dim;
  require(o_scales.numel() == kv * group * d, ErrorCode::kInternal, "fold_channel_scales: o's scales have the wrong width");
  const at::Tensor grouped = o_scales.view({kv, group, d});
  const at::Tensor first = grouped.select(1, 0);
  require(at::equal(grouped, first.unsqueeze(1).expand_as(grouped)), ErrorCode::kInternal,
          "fold_channel_scales: o's scales differ between query heads sharing a KV head");
  return first.reshape({-1});
}

void fold_channel_scales(LayerWeights& w, const ChannelScales& s, const ModelConfig& config) {
  using P = LayerWeights;
  // Gemma's norms multiply by (1 + w): 1/s cannot be folded into w alone.
  require(!config.norm_adds_one(), ErrorCode::kUnsupported,
          "activation-aware scaling cannot be folded into " + config.architecture_name() +
              "'s (1 + w) norms; use --method gptq or hqq for this model");
  const auto scale_columns = [&](int p, const at::Tensor& by) { w.weight[p] = w.weight[p] * by.unsqueeze(0); };
  // q, k and v read the attention norm's output: the norm's weight takes 1/s.
  w.attn_norm = w.attn_norm / s.qkv;
  for (int p : {P::kQ, P::kK, P::kV}) scale_columns(p, s.qkv);
  // gate and up read the MLP norm's output.
  w.mlp_norm = w.mlp_norm / s.gate_up;
  for (int p : {P::kGate, P::kUp}) scale_columns(p, s.gate_up);
  // o reads the attention output, a mix of v's rows (bias included) weighted by probabilities.
  const at::Tensor sv = kv_channel_scales(s.o, config);
  w.weight[P::kV] = w.weight[P::kV] / sv.unsqueeze(1);
  if (w.bias[P::kV].defined()) w.bias[P::kV] = w.bias[P::kV] / sv;
  scale_columns(P::kO, s.o);
  // down reads silu(gate) * up, linear in up's rows (up has no bias in these architectures).
  require(!w.bias[P::kUp].defined(), ErrorCode::kInternal, "fold_channel_scales: up_proj has a bias");
  w.weight[P::kUp] = w.weight[P::kUp] / s.down.unsqueeze(1);
  scale_columns(P::kDown, s.down);
}

}  // namespace hearth
