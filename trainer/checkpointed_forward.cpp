#include "trainer/checkpointed_forward.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>
#include <vector>

#include "trainer/decoder_handle.h"
#include "trainer/interruption.h"

namespace hearth::trainer {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autograd functions take defined tensors only: a context tensor the model lacks (the local_*
// ones without sliding-window layers) travels as an empty one.
at::Tensor or_empty(const at::Tensor& t) { return t.defined() ? t : at::empty({0}); }
at::Tensor or_undefined(const at::Tensor& t) { return t.numel() == 0 ? at::Tensor() : t; }

// The generators a recomputation must replay; set by training_hidden_states for one forward.
thread_local std::vector<at::Generator> tl_replay;

// Rows [first, first + n) of a per-row tensor of a batch of `batch` rows; tensors shared by all
// rows (a [T, S] causal mask) are returned whole.
at::Tensor batch_rows(const at::Tensor& t, int64_t batch, int64_t first, int64_t n) {
  if (!t.defined() || t.dim() < 3 || t.size(0) != batch) return t;
  return t.narrow(0, first, n);
}

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  // The context's tensors as inputs (autograd saves them); the local_* ones are empty for a
  // model without sliding-window layers.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                            const at::Tensor& mask, const at::Tensor& local_cos, const at::Tensor& local_sin,
                            const at::Tensor& local_mask, int64_t decoder, int64_t layer, int64_t recompute_rows) {
    // Each generator and its state as it was before this block drew anything.
    ctx->saved_data["generators"] = int64_t(tl_replay.size());
    for (size_t i = 0; i < tl_replay.size(); ++i) {
      ctx->saved_data["generator" + std::to_string(i)] = tl_replay[i];
      ctx->saved_data["state" + std::to_string(i)] = tl_replay[i].get_state();
    }
    ctx->saved_data["decoder"] = decoder;
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["recompute_rows"] = recompute_rows;
    ctx->save_for_backward({h, cos, sin, mask, local_cos, local_sin, local_mask});
    AttentionContext actx{cos, sin, mask, or_undefined(local_cos), or_undefined(local_sin), or_undefined(local_mask), nullptr};
    return from_handle(decoder).block(layer, h, actx);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const Decoder& decoder = from_handle(ctx->saved_data["decoder"].toInt());
    const int64_t layer = ctx->saved_data["layer"].toInt();
    // Replay the generators as they were in forward, and put them back afterwards.
    std::vector<at::Generator> gens;
    std::vector<at::Tensor> now;
    for (int64_t i = 0; i < ctx->saved_data["generators"].toInt(); ++i) {
      gens.push_back(ctx->saved_data["generator" + std::to_string(i)].toGenerator());
      now.push_back(gens.back().get_state());
      gens.back().set_state(ctx->saved_data["state" + std::to_string(i)].toTensor());
    }
    const at::Tensor& input = saved[0];
    const int64_t batch = input.size(0);
    const int64_t group = ctx->saved_data["recompute_rows"].toInt() > 0
                              ? std::min(batch, ctx->saved_data["recompute_rows"].toInt())
                              : batch;
    at::Tensor d_input = at::empty_like(input);
    for (int64_t r0 = 0; r0 < batch; r0 += group) {
      interruption_point();  // a large block's recomputation and backward take a good part of a second
      const int64_t n = std::min(group, batch - r0);
      AttentionContext actx{batch_rows(saved[1], batch, r0, n), batch_rows(saved[2], batch, r0, n),
                            batch_rows(saved[3], batch, r0, n), batch_rows(or_undefined(saved[4]), batch, r0, n),
                            batch_rows(or_undefined(saved[5]), batch, r0, n), batch_rows(or_undefined(saved[6]), batch, r0, n),
                            nullptr};
      at::Tensor h = input.narrow(0, r0, n).detach().requires_grad_(true);
      at::AutoGradMode grad_on(true);
      at::Tensor out = decoder.block(layer, h, actx);
      interruption_point();  // between the recomputation and its backward: each is a fraction of a second
      // Re-entrant backward: d input, and the block's trainable parameters get their .grad.
      torch::autograd::backward({out}, {grad_outputs[0].narrow(0, r0, n)});
      d_input.narrow(0, r0, n).copy_(h.grad());
    }
    for (size_t i = 0; i < gens.size(); ++i) gens[i].set_state(now[i]);
    variable_list grads(10);  // only the block's input has a gradient
    grads[0] = d_input;
    return grads;
  }
};

}  // namespace

at::Tensor training_hidden_states(const Decoder& decoder, const ForwardInput& input, bool checkpoint,
                                  const std::vector<at::Generator>& replay, int64_t recompute_rows) {
  tl_replay = replay;
  tl_replay.push_back(at::detail::getDefaultCPUGenerator());
  AttentionContext ctx = decoder.attention_context(input);
  at::Tensor h = decoder.embed(input.tokens);
  // A checkpointed block's backward runs only if its input requires grad; with a frozen
  // embedding, make the embedded input a leaf that does (its gradient is then discarded).
  if (checkpoint && !h.requires_grad()) h = h.detach().requires_grad_(true);
  for (int64_t l = 0; l < decoder.config().num_layers; ++l) {
    interruption_point();
    h = checkpoint ? CheckpointedBlock::apply(h, ctx.cos, ctx.sin, ctx.mask, or_empty(ctx.local_cos), or_empty(ctx.local_sin),
                                              or_empty(ctx.local_mask), as_handle(decoder), l, recompute_rows)
                   : decoder.block(l, h, ctx);
  }
  return decoder.final_norm(h);
}

}  // namespace hearth::trainer
