#include "trainer/checkpointed_forward.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>
#include <vector>

namespace hearth::trainer {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autograd contexts hold IValues only; the decoder outlives every graph built over it.
int64_t as_handle(const Decoder& d) { return reinterpret_cast<int64_t>(&d); }
const Decoder& from_handle(int64_t h) { return *reinterpret_cast<const Decoder*>(h); }

// The generators a recomputation must replay; set by training_hidden_states for one forward.
thread_local std::vector<at::Generator> tl_replay;

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                            const at::Tensor& mask, int64_t decoder, int64_t layer) {
    // Each generator and its state as it was before this block drew anything.
    ctx->saved_data["generators"] = int64_t(tl_replay.size());
    for (size_t i = 0; i < tl_replay.size(); ++i) {
      ctx->saved_data["generator" + std::to_string(i)] = tl_replay[i];
      ctx->saved_data["state" + std::to_string(i)] = tl_replay[i].get_state();
    }
    ctx->saved_data["decoder"] = decoder;
    ctx->saved_data["layer"] = layer;
    ctx->save_for_backward({h, cos, sin, mask});
    AttentionContext actx{cos, sin, mask, nullptr};
    return from_handle(decoder).block(layer, h, actx);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    AttentionContext actx{saved[1], saved[2], saved[3], nullptr};
    // Replay the generators as they were in forward, and put them back afterwards.
    std::vector<at::Generator> gens;
    std::vector<at::Tensor> now;
    for (int64_t i = 0; i < ctx->saved_data["generators"].toInt(); ++i) {
      gens.push_back(ctx->saved_data["generator" + std::to_string(i)].toGenerator());
      now.push_back(gens.back().get_state());
      gens.back().set_state(ctx->saved_data["state" + std::to_string(i)].toTensor());
    }
    at::Tensor h = saved[0].detach().requires_grad_(true);
    {
      at::AutoGradMode grad_on(true);
      at::Tensor out = from_handle(ctx->saved_data["decoder"].toInt()).block(ctx->saved_data["layer"].toInt(), h, actx);
      // Re-entrant backward: d input, and the block's trainable parameters get their .grad.
      torch::autograd::backward({out}, {grad_outputs[0]});
    }
    for (size_t i = 0; i < gens.size(); ++i) gens[i].set_state(now[i]);
    return {h.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor training_hidden_states(const Decoder& decoder, const ForwardInput& input, bool checkpoint,
                                  const std::vector<at::Generator>& replay) {
  tl_replay = replay;
  tl_replay.push_back(at::detail::getDefaultCPUGenerator());
  AttentionContext ctx = decoder.attention_context(input);
  at::Tensor h = decoder.embed(input.tokens);
  // A checkpointed block's backward runs only if its input requires grad; with a frozen
  // embedding, make the embedded input a leaf that does (its gradient is then discarded).
  if (checkpoint && !h.requires_grad()) h = h.detach().requires_grad_(true);
  for (int64_t l = 0; l < decoder.config().num_layers; ++l) {
    h = checkpoint ? CheckpointedBlock::apply(h, ctx.cos, ctx.sin, ctx.mask, as_handle(decoder), l)
                   : decoder.block(l, h, ctx);
  }
  return decoder.final_norm(h);
}

}  // namespace hearth::trainer
