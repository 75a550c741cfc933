#include "privacy/dp_sgd.h"

#include "core/error.h"

namespace hearth::privacy {

namespace {

void check_batch(const PerExampleGrads& grads) {
  require(!grads.empty(), ErrorCode::kInvalidArgument, "DP-SGD needs at least one parameter gradient");
  const int64_t batch = grads[0].dim() > 0 ? grads[0].size(0) : -1;
  for (const at::Tensor& g : grads) {
    require(g.defined() && g.dim() >= 1 && g.size(0) == batch, ErrorCode::kInvalidArgument,
            "per-example gradients must all have the same leading batch dimension");
  }
}

}  // namespace

at::Tensor per_example_norms(const PerExampleGrads& grads) {
  check_batch(grads);
  at::Tensor sq = at::zeros({grads[0].size(0)}, at::kDouble);
  for (const at::Tensor& g : grads) {
    const int64_t batch = g.size(0);  // may be 0: a Poisson-sampled step can draw no example
    sq += g.reshape({batch, batch > 0 ? g.numel() / batch : 0}).to(at::kDouble).pow(2).sum(1);
  }
  return sq.sqrt();
}

at::Tensor clip_per_example_(PerExampleGrads& grads, double clip_norm) {
  require(clip_norm > 0, ErrorCode::kInvalidArgument, "the clipping norm must be positive");
  at::Tensor factors = (clip_norm / (per_example_norms(grads) + 1e-6)).clamp_max(1.0);
  for (at::Tensor& g : grads) {
    std::vector<int64_t> shape(g.dim(), 1);
    shape[0] = g.size(0);
    g.mul_(factors.to(g.scalar_type()).reshape(shape));
  }
  return factors;
}

std::vector<at::Tensor> privatize_gradients(PerExampleGrads grads, const DpSgdConfig& config,
                                            int64_t expected_batch_size, at::Generator& generator) {
  require(config.noise_multiplier >= 0, ErrorCode::kInvalidArgument, "the noise multiplier must not be negative");
  require(expected_batch_size > 0, ErrorCode::kInvalidArgument, "the expected batch size must be positive");
  clip_per_example_(grads, config.clip_norm);
  std::vector<at::Tensor> out;
  out.reserve(grads.size());
  const double std_dev = config.noise_multiplier * config.clip_norm;
  for (const at::Tensor& g : grads) {
    at::Tensor sum = g.sum(0);
    at::Tensor noise = at::normal(0.0, std_dev, sum.sizes(), generator, sum.options());
    out.push_back((sum + noise) / static_cast<double>(expected_batch_size));
  }
  return out;
}

}  // namespace hearth::privacy
