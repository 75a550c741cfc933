// DP-SGD in the trainer on the real stories260K model: each row's gradient is its own, every
// row's contribution is clipped to C before the sum, and a DP run still learns (held-out loss
// falls) while reporting ε at δ.
#include <gtest/gtest.h>

#include <cmath>

#include "trainer/packing.h"
#include "trainer/private_step.h"
#include "trainer/trainable.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"
#include "trainer/chunked_loss.h"
#include "trainer/checkpointed_forward.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

struct Fixture {
  LoadedModel model = testing::load_stories(/*nf4=*/true);
  trainer::PackedRows train, eval;
  std::unique_ptr<trainer::Trainable> trainable;

  explicit Fixture(int64_t seq_len, size_t bytes = 20000) {
    trainer::TrainingData data;
    trainer::add_file_documents("prideprejudice.txt", testing::text_slice("data/jane_austen/prideprejudice.txt", bytes),
                                *model.tokenizer, {0.1, trainer::EvalSplit::kTail}, data);
    train = trainer::pack_documents(data.train, seq_len);
    eval = trainer::pack_documents(data.eval, seq_len);
    AdapterConfig a;
    a.rank = 4;
    a.alpha = 8;
    a.seed = 3;
    trainable = std::make_unique<trainer::Trainable>(trainer::Trainable::adapter(*model.decoder, a));
    // A non-zero B, so every adapter tensor (A too) gets a gradient.
    at::NoGradGuard no_grad;
    for (auto& [name, p] : trainable->named_parameters()) p.normal_(0.0, 0.02);
  }

  // The row's summed loss and trained targets, as the trainer computes them.
  std::pair<at::Tensor, double> row_loss(int64_t row) const {
    const at::Tensor index = at::tensor({row}, at::kLong);
    ForwardInput in;
    in.tokens = train.tokens.index_select(0, index);
    in.positions = train.positions.index_select(0, index);
    in.segments = train.segments.index_select(0, index);
    at::Tensor hidden = trainer::training_hidden_states(*model.decoder, in, false);
    at::Tensor w = train.weights.index_select(0, index).reshape({-1});
    at::Tensor loss = trainer::chunked_cross_entropy(*model.decoder, hidden.reshape({-1, hidden.size(-1)}),
                                                     train.targets.index_select(0, index).reshape({-1}), w);
    return {loss, w.sum().item<double>()};
  }
};

TEST(PrivateStep, PerExampleGradientIsTheRowsOwnGradient) {
  Fixture f(32);
  const auto& params = f.trainable->named_parameters();
  auto loss_of = [&](int64_t r) { return f.row_loss(r); };
  privacy::PerExampleGrads grads = trainer::per_example_gradients(params, {0, 5, 9}, loss_of);
  ASSERT_EQ(grads.size(), params.size());
  // Row 5 alone, through plain autograd.
  auto [loss, tokens] = f.row_loss(5);
  (loss / tokens).backward();
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(grads[i].size(0), 3);
    EXPECT_TRUE(at::allclose(grads[i][1], params[i].second.grad(), 1e-5, 1e-7)) << params[i].first;
    EXPECT_FALSE(at::allclose(grads[i][0], grads[i][1])) << params[i].first;  // rows differ
  }
}

TEST(PrivateStep, ClippingBoundsEveryPerExampleGradient) {
  Fixture f(32);
  const auto& params = f.trainable->named_parameters();
  auto loss_of = [&](int64_t r) { return f.row_loss(r); };
  // Norms of every row's gradient, to pick a C that clips most of them.
  std::vector<int64_t> all;
  for (int64_t r = 0; r < 16; ++r) all.push_back(r);
  const at::Tensor norms = privacy::per_example_norms(trainer::per_example_gradients(params, all, loss_of));
  const double clip = 0.5 * norms.median().item<double>();

  trainer::DpOptions o;
  o.clip = clip;
  o.noise = 1e-12;  // effectively none: the applied gradient is the clipped mean
  o.seed = 11;
  trainer::PrivateStep step(o, f.train.rows(), 8, 10);
  trainer::PrivateStepStats s = step.run(params, loss_of);
  ASSERT_FALSE(s.rows.empty());
  EXPECT_GT(s.clipped_share, 0.0);

  // The reference: each sampled row's own gradient, clipped in double precision.
  std::vector<at::Tensor> applied;
  for (const auto& [name, p] : params) applied.push_back(p.grad().clone());
  for (auto& [name, p] : params) p.mutable_grad() = at::Tensor();
  privacy::PerExampleGrads g = trainer::per_example_gradients(params, s.rows, loss_of);
  const at::Tensor raw = privacy::per_example_norms(g);
  std::vector<at::Tensor> expected(params.size());
  for (size_t r = 0; r < s.rows.size(); ++r) {
    const double factor = std::min(1.0, clip / (raw[r].item<double>() + 1e-6));
    double sq = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor c = g[i][r].to(at::kDouble) * factor;
      sq += c.pow(2).sum().item<double>();
      expected[i] = expected[i].defined() ? expected[i] + c : c;
    }
    EXPECT_LE(std::sqrt(sq), clip * (1 + 1e-6)) << "row " << s.rows[r];  // every contribution bounded by C
  }
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(at::allclose(applied[i].to(at::kDouble), expected[i] / 8.0, 1e-4, 1e-9)) << params[i].first;
  }
  EXPECT_EQ(step.report()["steps"], 1);
}

TEST(PrivateStep, NoiseFromATargetEpsilonMeetsIt) {
  trainer::DpOptions o;
  o.epsilon = 3.0;
  o.delta = 1e-5;
  trainer::PrivateStep step(o, 1000, 10, 200);
  const double q = 0.01;
  EXPECT_DOUBLE_EQ(step.sampling_rate(), q);
  EXPECT_LE(privacy::dp_sgd_epsilon(q, step.noise_multiplier(), 200, 1e-5).epsilon, 3.0 * 1.0001);
  EXPECT_GT(privacy::dp_sgd_epsilon(q, step.noise_multiplier() * 0.99, 200, 1e-5).epsilon, 3.0);
}

TEST(PrivateStep, DpRunOnStoriesStillLowersHeldOutLoss) {
  const fs::path dir = testing::fresh_temp_dir("dp_run");
  LoadedModel m = testing::load_stories(/*nf4=*/true);
  trainer::TrainingData data;
  trainer::add_file_documents("prideprejudice.txt", testing::text_slice("data/jane_austen/prideprejudice.txt", 60000),
                              *m.tokenizer, {0.1, trainer::EvalSplit::kTail}, data);
  trainer::TrainConfig cfg = testing::small_config(dir);
  cfg.steps = 20;
  cfg.seq_len = 64;
  cfg.batch = 8;
  cfg.grad_accum = 1;
  cfg.lr = 1e-2;
  cfg.eval_every = 0;
  cfg.dp.clip = 1.0;
  cfg.dp.noise = 0.8;
  cfg.dp.seed = 5;
  cfg.in_memory = true;
  AdapterConfig a;
  a.rank = 4;
  a.alpha = 8;
  a.seed = 7;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, a);
  trainer::TrainResult r = trainer::train(*m.decoder, t, trainer::pack_documents(data.train, cfg.seq_len),
                                          trainer::pack_documents(data.eval, cfg.seq_len), cfg, {"stories260K", m.fingerprint});
  ASSERT_TRUE(r.completed);
  EXPECT_LT(r.eval_loss_after, r.eval_loss_before - 0.1) << r.to_json().dump();
  ASSERT_TRUE(r.privacy.is_object());
  EXPECT_EQ(r.privacy["steps"], 20);
  EXPECT_DOUBLE_EQ(r.privacy["sigma"].get<double>(), 0.8);
  EXPECT_GT(r.privacy["epsilon"].get<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(r.privacy["epsilon"].get<double>()));
  EXPECT_TRUE(fs::is_empty(dir)) << "an in-memory run wrote files";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
