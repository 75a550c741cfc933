#include "trainer/chunked_loss.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "core/error.h"
#include "trainer/decoder_handle.h"
#include "trainer/interruption.h"

namespace hearth::trainer {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Vocabulary rows per tile: about 1 Mi floats (4 MiB) of logits for `rows` positions.
int64_t default_tile(int64_t rows, int64_t vocab) {
  return std::clamp<int64_t>((int64_t(1) << 20) / std::max<int64_t>(rows, 1), 16, vocab);
}

// Logits of every position for vocabulary rows [v0, v0 + n): hidden [M, H] -> [M, n], with the
// head's weight rows w [n, H] (fp32) given by the caller.
at::Tensor tile_logits(const Linear& head, const at::Tensor& hidden, const at::Tensor& w, int64_t v0, int64_t n) {
  at::Tensor logits = at::mm(hidden, w.t());
  if (head.bias().defined()) logits.add_(head.bias().narrow(0, v0, n));
  return logits;
}

// For each position, the column of its target inside tile [v0, v0 + n) (clamped) and whether
// the target lies in the tile at all.
std::pair<at::Tensor, at::Tensor> targets_in_tile(const at::Tensor& targets, int64_t v0, int64_t n) {
  at::Tensor inside = targets.ge(v0).logical_and(targets.lt(v0 + n));
  return {(targets - v0).clamp(0, n - 1).unsqueeze(1), inside};
}

// Cross-entropy over the vocabulary a tile of head rows at a time. Forward keeps, per position,
// the log-sum-exp of its logits; backward recomputes each tile's logits and turns them into
// softmax - onehot, so neither pass holds more than one [M, tile] block of logits.
struct TiledCrossEntropy : public torch::autograd::Function<TiledCrossEntropy> {
  // head_weight: the dense head weight when it is trained (its gradient is returned), else an
  // empty placeholder (autograd functions take no undefined inputs).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& targets,
                            const at::Tensor& weights, const at::Tensor& head_weight, int64_t decoder, int64_t tile) {
    const Linear& head = from_handle(decoder).lm_head();
    const int64_t rows = hidden.size(0), vocab = head.out_features();
    const int64_t tiles = (vocab + tile - 1) / tile;
    at::Tensor tile_lse = at::empty({rows, tiles}, at::kFloat);
    at::Tensor target_logit = at::zeros({rows}, at::kFloat);
    for (int64_t t = 0; t < tiles; ++t) {
      interruption_point();  // a large vocabulary's head is seconds of work for a long batch
      const int64_t v0 = t * tile, n = std::min(tile, vocab - v0);
      at::Tensor logits = tile_logits(head, hidden, head.weight_rows_fp32(v0, n), v0, n);
      tile_lse.select(1, t).copy_(at::logsumexp(logits, 1));
      auto [column, inside] = targets_in_tile(targets, v0, n);
      target_logit.add_(logits.gather(1, column).squeeze(1).masked_fill_(inside.logical_not(), 0.0f));
    }
    at::Tensor lse = at::logsumexp(tile_lse, 1);
    ctx->save_for_backward({hidden, targets, weights, lse, head_weight});
    ctx->saved_data["decoder"] = decoder;
    ctx->saved_data["tile"] = tile;
    const at::Tensor nll = lse - target_logit;
    return (nll.to(at::kDouble) * weights.to(at::kDouble)).sum().to(at::kFloat);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &targets = saved[1], &weights = saved[2], &lse = saved[3];
    const bool head_grad = saved[4].numel() > 0;
    const Linear& head = from_handle(ctx->saved_data["decoder"].toInt()).lm_head();
    const int64_t tile = ctx->saved_data["tile"].toInt(), vocab = head.out_features();
    const at::Tensor scale = (weights * grad_outputs[0]).unsqueeze(1);
    at::Tensor d_hidden = at::zeros_like(hidden);
    at::Tensor d_weight = head_grad ? at::zeros({vocab, hidden.size(1)}, at::kFloat) : at::Tensor();
    for (int64_t v0 = 0; v0 < vocab; v0 += tile) {
      interruption_point();
      const int64_t n = std::min(tile, vocab - v0);
      const at::Tensor w = head.weight_rows_fp32(v0, n);
      // d loss / d logits = (softmax - onehot(target)) * weight, for this tile's columns only.
      at::Tensor d_logits = tile_logits(head, hidden, w, v0, n).sub_(lse.unsqueeze(1)).exp_();
      auto [column, inside] = targets_in_tile(targets, v0, n);
      d_logits.scatter_add_(1, column, inside.to(at::kFloat).neg_().unsqueeze(1));
      d_logits.mul_(scale);
      d_hidden.addmm_(d_logits, w);
      if (head_grad) d_weight.narrow(0, v0, n).addmm_(d_logits.t(), hidden);
    }
    return {d_hidden, at::Tensor(), at::Tensor(), d_weight, at::Tensor(), at::Tensor()};
  }
};

void check_shapes(const at::Tensor& hidden, const at::Tensor& targets, const at::Tensor& weights) {
  require(hidden.dim() == 2 && targets.dim() == 1 && weights.dim() == 1 && targets.size(0) == hidden.size(0) &&
              weights.size(0) == hidden.size(0),
          ErrorCode::kInvalidArgument, "loss inputs must be hidden [N, H], targets [N], weights [N]");
}

}  // namespace

at::Tensor chunked_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                                 const at::Tensor& weights, int64_t vocab_tile) {
  check_shapes(hidden, targets, weights);
  const Linear& head = decoder.lm_head();
  require(!head.adapter(), ErrorCode::kUnsupported, "the chunked loss does not support an adapter on the output head");
  // Positions without loss (padding, prompt tokens) need no logits at all.
  at::Tensor w = weights.to(at::kFloat);
  at::Tensor h = hidden.to(at::kFloat), t = targets;
  if (w.eq(0).any().item<bool>()) {
    const at::Tensor keep = w.nonzero().squeeze(1);
    h = h.index_select(0, keep);
    t = t.index_select(0, keep);
    w = w.index_select(0, keep);
  }
  const at::Tensor head_weight =
      head.is_dense() && head.dense_weight().requires_grad() ? head.dense_weight() : at::empty({0});
  const int64_t tile = vocab_tile > 0 ? std::min(vocab_tile, head.out_features())
                                      : default_tile(h.size(0), head.out_features());
  return TiledCrossEntropy::apply(h.contiguous(), t.contiguous(), w.contiguous(), head_weight, as_handle(decoder), tile);
}

at::Tensor full_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                              const at::Tensor& weights) {
  check_shapes(hidden, targets, weights);
  at::Tensor logp = at::log_softmax(decoder.logits(hidden), 1);
  return -(logp.gather(1, targets.unsqueeze(1)).squeeze(1) * weights.to(at::kFloat)).sum();
}

}  // namespace hearth::trainer
