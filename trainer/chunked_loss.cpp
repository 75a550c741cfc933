#include "trainer/chunked_loss.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "core/error.h"

namespace hearth::trainer {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

int64_t default_chunk(const Decoder& decoder) {
  return std::max<int64_t>(1, (int64_t(4) << 20) / decoder.config().vocab_size);
}

// The decoder outlives every graph built over it; autograd contexts hold IValues only, so
// the pointer travels as an integer.
int64_t as_handle(const Decoder& d) { return reinterpret_cast<int64_t>(&d); }
const Decoder& from_handle(int64_t h) { return *reinterpret_cast<const Decoder*>(h); }

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& targets,
                            const at::Tensor& weights, int64_t decoder, int64_t chunk) {
    const Decoder& d = from_handle(decoder);
    double total = 0;
    for (int64_t s = 0; s < hidden.size(0); s += chunk) {
      const int64_t n = std::min(chunk, hidden.size(0) - s);
      at::Tensor logits = d.logits(hidden.narrow(0, s, n));
      at::Tensor nll = at::logsumexp(logits, 1) - logits.gather(1, targets.narrow(0, s, n).unsqueeze(1)).squeeze(1);
      total += (nll * weights.narrow(0, s, n)).sum().item<double>();
    }
    ctx->save_for_backward({hidden, targets, weights});
    ctx->saved_data["decoder"] = decoder;
    ctx->saved_data["chunk"] = chunk;
    return at::scalar_tensor(total, at::kFloat);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &targets = saved[1], &weights = saved[2];
    const Decoder& d = from_handle(ctx->saved_data["decoder"].toInt());
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor scale = weights * grad_outputs[0];
    at::Tensor d_hidden = at::empty_like(hidden);
    for (int64_t s = 0; s < hidden.size(0); s += chunk) {
      const int64_t n = std::min(chunk, hidden.size(0) - s);
      at::Tensor h = hidden.narrow(0, s, n).detach().requires_grad_(true);
      at::AutoGradMode grad_on(true);
      at::Tensor logits = d.logits(h);
      // d loss / d logits = (softmax - onehot(target)) * weight, for this chunk only.
      at::Tensor d_logits = at::softmax(logits.detach(), 1);
      d_logits.scatter_add_(1, targets.narrow(0, s, n).unsqueeze(1), at::full({n, 1}, -1.0f));
      d_logits.mul_(scale.narrow(0, s, n).unsqueeze(1));
      // Re-entrant backward: d hidden, plus the head's weight gradients when they are trainable.
      torch::autograd::backward({logits}, {d_logits});
      d_hidden.narrow(0, s, n).copy_(h.grad());
    }
    return {d_hidden, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check_shapes(const at::Tensor& hidden, const at::Tensor& targets, const at::Tensor& weights) {
  require(hidden.dim() == 2 && targets.dim() == 1 && weights.dim() == 1 && targets.size(0) == hidden.size(0) &&
              weights.size(0) == hidden.size(0),
          ErrorCode::kInvalidArgument, "loss inputs must be hidden [N, H], targets [N], weights [N]");
}

}  // namespace

at::Tensor chunked_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                                 const at::Tensor& weights, int64_t chunk_rows) {
  check_shapes(hidden, targets, weights);
  const int64_t chunk = chunk_rows > 0 ? chunk_rows : default_chunk(decoder);
  return ChunkedCrossEntropy::apply(hidden, targets, weights.to(at::kFloat), as_handle(decoder), chunk);
}

at::Tensor full_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                              const at::Tensor& weights) {
  check_shapes(hidden, targets, weights);
  at::Tensor logp = at::log_softmax(decoder.logits(hidden), 1);
  return -(logp.gather(1, targets.unsqueeze(1)).squeeze(1) * weights.to(at::kFloat)).sum();
}

}  // namespace hearth::trainer
