// DP-SGD inside the training loop: each step samples rows independently with probability q
// (Poisson sampling, what the accountant assumes), takes one backward pass per row for that
// row's own gradient, clips, sums and adds Gaussian noise (privacy/dp_sgd.h), and counts the
// step in an RDP accountant that reports ε at δ.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "privacy/dp_sgd.h"
#include "privacy/rdp_accountant.h"
#include "trainer/train_config.h"

namespace hearth::trainer {

using NamedParams = std::vector<std::pair<std::string, at::Tensor>>;

// One training row's summed loss (differentiable) and its number of trained targets.
using RowLoss = std::function<std::pair<at::Tensor, double>(int64_t row)>;

// Each row's gradient of its mean loss per trained target, stacked [rows, ...] per parameter
// (the order of `params`): one forward and backward pass per row, so no row's gradient mixes
// with another's. Leaves every parameter's .grad undefined. Adds the rows' summed loss and
// trained targets to *loss_sum and *tokens when given.
privacy::PerExampleGrads per_example_gradients(const NamedParams& params, const std::vector<int64_t>& rows,
                                               const RowLoss& row_loss, double* loss_sum = nullptr,
                                               double* tokens = nullptr);

struct PrivateStepStats {
  std::vector<int64_t> rows;   // sampled this step (may be empty)
  double loss_sum = 0;         // summed over the rows' trained targets
  double tokens = 0;
  double mean_grad_norm = 0;   // per-row gradient norm before clipping, averaged over the rows
  double clipped_share = 0;    // share of the rows whose gradient was clipped
};

class PrivateStep {
 public:
  // `training_rows`: the dataset size; `expected_batch`: rows per step on average, so the
  // sampling rate is q = expected_batch / training_rows. With options.epsilon, σ is the
  // smallest noise that keeps the whole run of `steps` steps at that ε.
  PrivateStep(const DpOptions& options, int64_t training_rows, int64_t expected_batch, int64_t steps);

  // One DP-SGD step: samples rows, computes their gradients through `row_loss`, clips them
  // to C, sums, adds N(0, (σC)²) per coordinate, divides by the expected batch and stores the
  // result as each parameter's .grad, ready for the optimizer.
  PrivateStepStats run(const NamedParams& params, const RowLoss& row_loss);

  // A resumed run: the steps taken before the checkpoint count towards ε too.
  void count_previous_steps(int64_t steps) { accountant_.step(steps); }
  // Draws the sampling and the noise; its state belongs in a checkpoint.
  at::Generator& generator() { return generator_; }
  double noise_multiplier() const { return config_.noise_multiplier; }
  double sampling_rate() const { return q_; }
  // {epsilon, delta, sigma, clip, sampling_rate, expected_batch, steps, accountant}.
  Json report() const;

 private:
  privacy::DpSgdConfig config_;
  double q_ = 0;
  double delta_ = 0;
  int64_t training_rows_ = 0;
  int64_t expected_batch_ = 0;
  at::Generator generator_;
  privacy::RdpAccountant accountant_;
};

}  // namespace hearth::trainer
