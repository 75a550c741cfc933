#include "inference/batched_forward.h"

#include <optional>

#include "core/error.h"
#include "inference/quant/quant_matmul.h"

namespace hearth {
namespace {

// Each sequence's rotary angles and mask, from its own cache length (built once per step).
std::vector<AttentionContext> contexts_of(const Decoder& decoder, const std::vector<SequenceStep>& steps) {
  std::vector<AttentionContext> out;
  out.reserve(steps.size());
  for (const SequenceStep& s : steps) {
    ForwardInput in;
    in.tokens = at::empty({1, int64_t(s.tokens.size())}, at::kLong);
    in.cache = s.cache;
    out.push_back(decoder.attention_context(in));
  }
  return out;
}

// One decoder block over all rows: projections batched, attention per sequence.
at::Tensor batched_block(const Decoder& decoder, int64_t index, const at::Tensor& h, const std::vector<SequenceStep>& steps,
                         const std::vector<AttentionContext>& ctx) {
  const ModelConfig& c = decoder.config();
  const DecoderLayer& layer = decoder.layers()[index];
  const at::Tensor n = decoder.rms_norm(h, layer.attn_norm);
  const at::Tensor q = layer.q.forward(n), k = layer.k.forward(n), v = layer.v.forward(n);
  std::vector<at::Tensor> outs;
  outs.reserve(steps.size());
  int64_t row = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t t = static_cast<int64_t>(steps[i].tokens.size());
    outs.push_back(decoder.attend(index, q.narrow(1, row, t).view({1, t, c.num_heads, c.head_dim}),
                                  k.narrow(1, row, t).view({1, t, c.num_kv_heads, c.head_dim}),
                                  v.narrow(1, row, t).view({1, t, c.num_kv_heads, c.head_dim}), ctx[i]));
    row += t;
  }
  const at::Tensor x = decoder.add_attention_output(layer, h, layer.o.forward(outs.size() == 1 ? outs[0] : at::cat(outs, 1)));
  return decoder.add_mlp(layer, x);
}

}  // namespace

at::Tensor batched_step(const Decoder& decoder, const std::vector<SequenceStep>& steps) {
  require(!steps.empty(), ErrorCode::kInvalidArgument, "batched_step: no sequences");
  at::InferenceMode inference;
  std::vector<int64_t> tokens, last_rows;
  for (const SequenceStep& s : steps) {
    require(!s.tokens.empty() && s.cache != nullptr, ErrorCode::kInvalidArgument,
            "batched_step: every sequence needs new tokens and its own cache");
    require(s.cache->length() + int64_t(s.tokens.size()) <= s.cache->capacity(), ErrorCode::kInvalidArgument,
            "batched_step: a sequence's tokens do not fit its cache");
    tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
    last_rows.push_back(static_cast<int64_t>(tokens.size()) - 1);
  }
  const std::vector<AttentionContext> ctx = contexts_of(decoder, steps);
  at::Tensor h = decoder.embed(at::tensor(tokens, at::kLong).unsqueeze(0));
  {
    // A step of decode positions only: each row rounds as a single request's decode GEMV. Prompt
    // rows compute as generate() computes a prompt's.
    std::optional<DecodeRowsScope> decode_rows;
    std::optional<PromptRowsScope> prompt_rows;
    if (tokens.size() == steps.size()) decode_rows.emplace();
    else prompt_rows.emplace();
    for (int64_t l = 0; l < decoder.config().num_layers; ++l) h = batched_block(decoder, l, h, steps, ctx);
  }
  for (const SequenceStep& s : steps) s.cache->advance(static_cast<int64_t>(s.tokens.size()));
  const at::Tensor last = h.squeeze(0).index_select(0, at::tensor(last_rows, at::kLong));
  // One row per request, as hearth::generate computes the logits of one position at a time.
  DecodeRowsScope one_row_each;
  return decoder.logits(decoder.final_norm(last));
}

}  // namespace hearth
