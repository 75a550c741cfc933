#include "trainer/private_step.h"

#include <sodium.h>

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace hearth::trainer {
namespace {

double rate_of(int64_t training_rows, int64_t expected_batch) {
  require(training_rows > 0 && expected_batch > 0, ErrorCode::kInvalidArgument, "DP-SGD needs training rows");
  require(expected_batch <= training_rows, ErrorCode::kInvalidArgument,
          "DP-SGD samples " + std::to_string(expected_batch) + " rows per step on average but the data has only " +
              std::to_string(training_rows) + "; lower --batch / --grad-accum");
  return double(expected_batch) / double(training_rows);
}

double noise_for(const DpOptions& o, double q, int64_t steps) {
  if (o.noise > 0) return o.noise;
  return privacy::noise_for_epsilon(o.epsilon, q, steps, o.delta);
}

// The sampling and the noise must be unpredictable to whoever sees the adapter, so unless a
// seed was asked for, the generator's seed comes from the OS's random source.
uint64_t generator_seed(uint64_t requested) {
  if (requested != 0) return requested;
  uint64_t seed = 0;
  require(sodium_init() >= 0, ErrorCode::kInternal, "libsodium failed to initialize");
  randombytes_buf(&seed, sizeof seed);
  return seed;
}

}  // namespace

privacy::PerExampleGrads per_example_gradients(const NamedParams& params, const std::vector<int64_t>& rows,
                                               const RowLoss& row_loss, double* loss_sum, double* tokens) {
  std::vector<std::vector<at::Tensor>> per_param(params.size());
  for (int64_t row : rows) {
    auto [loss, row_tokens] = row_loss(row);
    if (loss_sum) *loss_sum += loss.item<double>();
    if (tokens) *tokens += row_tokens;
    if (row_tokens > 0) (loss / row_tokens).backward();
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor p = params[i].second;
      per_param[i].push_back(p.grad().defined() ? p.grad().detach().clone() : at::zeros_like(p));
      p.mutable_grad() = at::Tensor();
    }
  }
  privacy::PerExampleGrads grads;
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i].second;
    if (rows.empty()) {
      std::vector<int64_t> shape{0};
      for (int64_t d : p.sizes()) shape.push_back(d);
      grads.push_back(at::zeros(shape, p.options().requires_grad(false)));
    } else {
      grads.push_back(at::stack(per_param[i]));
    }
  }
  return grads;
}

PrivateStep::PrivateStep(const DpOptions& options, int64_t training_rows, int64_t expected_batch, int64_t steps)
    : config_{options.clip, noise_for(options, rate_of(training_rows, expected_batch), steps)},
      q_(rate_of(training_rows, expected_batch)),
      delta_(options.delta),
      training_rows_(training_rows),
      expected_batch_(expected_batch),
      generator_(make_generator(generator_seed(options.seed))),
      accountant_(q_, config_.noise_multiplier) {}

PrivateStepStats PrivateStep::run(const NamedParams& params, const RowLoss& row_loss) {
  PrivateStepStats stats;
  // Poisson sampling: every row independently with probability q, so the batch size varies.
  at::Tensor take = at::rand({training_rows_}, generator_, at::kDouble) < q_;
  at::Tensor index = take.nonzero().reshape({-1});
  stats.rows.assign(index.data_ptr<int64_t>(), index.data_ptr<int64_t>() + index.numel());

  privacy::PerExampleGrads grads = per_example_gradients(params, stats.rows, row_loss, &stats.loss_sum, &stats.tokens);
  if (!stats.rows.empty()) {
    const at::Tensor norms = privacy::per_example_norms(grads);
    stats.mean_grad_norm = norms.mean().item<double>();
    stats.clipped_share = (norms > config_.clip_norm).to(at::kDouble).mean().item<double>();
  }
  std::vector<at::Tensor> noisy = privacy::privatize_gradients(std::move(grads), config_, expected_batch_, generator_);
  for (size_t i = 0; i < params.size(); ++i) params[i].second.mutable_grad() = noisy[i];
  accountant_.step();
  return stats;
}

Json PrivateStep::report() const {
  const privacy::PrivacySpent spent = accountant_.spent(delta_);
  return Json{{"epsilon", spent.epsilon},
              {"delta", delta_},
              {"sigma", config_.noise_multiplier},
              {"clip", config_.clip_norm},
              {"sampling_rate", q_},
              {"expected_batch", expected_batch_},
              {"steps", accountant_.steps()},
              {"rdp_order", spent.order},
              {"accountant", "rdp (sampled Gaussian, Poisson sampling; Balle et al. 2020 conversion)"}};
}

}  // namespace hearth::trainer
