// Gradient checkpointing per block gives the same loss and gradients as the plain forward,
// for full fine-tuning and for a LoRA adapter with dropout (the recomputation replays its RNG),
// also when backward recomputes a block a few batch rows at a time; for Qwen3 and Gemma 3
// (sliding-window layers) too, whose LoRA training lowers the held-out loss.
#include <gtest/gtest.h>

#include <cmath>

#include "adapters/adapter.h"
#include "core/rng.h"
#include "trainer/checkpointed_forward.h"
#include "trainer/chunked_loss.h"
#include "trainer/packing.h"
#include "inference/model_files.h"
#include "trainer/trainable.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {

trainer::PackedRows two_rows(const Tokenizer& tok) {
  std::vector<trainer::TokenDocument> docs;
  for (const char* s : {"Once upon a time there was a little dog.", "The sun was hot.", "Tom and Sue went to the park to play."}) {
    trainer::TokenDocument d;
    d.tokens = tok.encode(s, true);
    d.trained.assign(d.tokens.size(), 1);
    docs.push_back(d);
  }
  return trainer::pack_documents(docs, 12);
}

// Loss and the gradients of every trainable tensor, for one forward/backward.
std::pair<double, std::vector<at::Tensor>> loss_and_grads(const Decoder& d, trainer::Trainable& t,
                                                          const trainer::PackedRows& rows, bool checkpoint,
                                                          const std::vector<at::Generator>& replay,
                                                          int64_t recompute_rows = 0) {
  ForwardInput in{rows.tokens, rows.positions, rows.segments, nullptr};
  at::Tensor h = trainer::training_hidden_states(d, in, checkpoint, replay, recompute_rows);
  at::Tensor loss = trainer::chunked_cross_entropy(d, h.reshape({-1, h.size(-1)}), rows.targets.reshape({-1}),
                                                   rows.weights.reshape({-1}));
  loss.backward();
  std::vector<at::Tensor> grads;
  for (auto& [name, p] : t.named_parameters()) {
    grads.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    p.mutable_grad() = at::Tensor();
  }
  return {loss.item<double>(), grads};
}

// Equal up to float rounding: the largest difference within 1e-4 of the largest magnitude. The
// two forwards sum in different orders (other kernels, other BLAS shapes); through five blocks
// and back that reached 1.7e-5 on an AMD EPYC (OpenBLAS's Zen kernels), so 1e-4 leaves ~6x
// margin, while a different dropout mask or a missing path changes gradients by their own size.
bool close(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() <= 1e-4 * a.abs().max().item<double>();
}

// The checkpointed forward runs each block without autograd first, which may take other kernels
// than the plain graph (fused no-grad loops, other BLAS shapes); on some CPUs (AVX2) the float
// summation order then differs and the summed loss moves in its 7th digit (143.53679 vs
// 143.53687). 1e-5 relative is ~20x that rounding, while a wrong mask or a dropped path moves the
// loss by whole percents.
void expect_same_loss(double a, double b) { EXPECT_NEAR(a, b, 1e-5 * std::abs(a)); }

void expect_same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, trainer::Trainable& t) {
  ASSERT_EQ(a.size(), b.size());
  int defined = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].defined(), b[i].defined()) << t.named_parameters()[i].first;
    if (!a[i].defined()) continue;
    ++defined;
    EXPECT_TRUE(close(a[i], b[i]))
        << t.named_parameters()[i].first << " max diff " << (a[i] - b[i]).abs().max().item<double>() << " of max "
        << a[i].abs().max().item<double>();
  }
  EXPECT_GT(defined, 0);
}

TEST(CheckpointedForward, FullFineTuningGradientsMatchPlainForward) {
  LoadedModel m = testing::load_stories();
  trainer::Trainable t = trainer::Trainable::full(*m.decoder);
  trainer::PackedRows rows = two_rows(*m.tokenizer);
  auto [plain_loss, plain] = loss_and_grads(*m.decoder, t, rows, false, {});
  auto [ckpt_loss, ckpt] = loss_and_grads(*m.decoder, t, rows, true, {});
  expect_same_loss(plain_loss, ckpt_loss);
  expect_same(plain, ckpt, t);
}

TEST(CheckpointedForward, RowGroupRecomputationMatchesWholeBatch) {
  LoadedModel m = testing::load_stories(/*nf4=*/true);
  AdapterConfig cfg;
  cfg.rank = 4;
  cfg.seed = 3;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, cfg);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, p] : t.named_parameters()) {
      if (name.find("lora_B") != std::string::npos) p.normal_(0, 0.05, make_generator(5));
    }
  }
  trainer::PackedRows rows = two_rows(*m.tokenizer);
  ASSERT_GE(rows.rows(), 3);  // groups of 2 leave a remainder
  // Against whole-batch recomputation: without dropout the checkpointed forward takes the
  // adapter's no-grad path, whose rounding differs from the plain forward's graph.
  auto [whole_loss, whole] = loss_and_grads(*m.decoder, t, rows, true, {}, 0);
  for (int64_t group : {1, 2}) {
    auto [ckpt_loss, ckpt] = loss_and_grads(*m.decoder, t, rows, true, {}, group);
    EXPECT_DOUBLE_EQ(whole_loss, ckpt_loss);  // the same forward; only backward's recomputation is grouped
    expect_same(whole, ckpt, t);
  }
  auto [plain_loss, plain] = loss_and_grads(*m.decoder, t, rows, false, {});
  EXPECT_NEAR(plain_loss, whole_loss, 1e-6 * plain_loss);
}

TEST(CheckpointedForward, LoraWithDropoutGradientsMatchPlainForward) {
  LoadedModel m = testing::load_stories(/*nf4=*/true);
  AdapterConfig cfg;
  cfg.rank = 4;
  cfg.dropout = 0.2;
  cfg.seed = 3;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, cfg);
  {  // B starts at zero; give it values so every gradient is non-trivial.
    at::NoGradGuard no_grad;
    for (auto& [name, p] : t.named_parameters()) {
      if (name.find("lora_B") != std::string::npos) p.normal_(0, 0.05, make_generator(5));
    }
  }
  t.set_training(true);
  trainer::PackedRows rows = two_rows(*m.tokenizer);
  at::Generator& dropout = t.adapter_ptr()->dropout_generator();
  const at::Tensor start = dropout.get_state();
  auto [plain_loss, plain] = loss_and_grads(*m.decoder, t, rows, false, {});
  dropout.set_state(start);
  auto [ckpt_loss, ckpt] = loss_and_grads(*m.decoder, t, rows, true, {dropout});
  expect_same_loss(plain_loss, ckpt_loss);
  expect_same(plain, ckpt, t);
  // Without replaying the dropout generator the recomputation would draw other masks.
  dropout.set_state(start);
  auto [unreplayed_loss, unreplayed] = loss_and_grads(*m.decoder, t, rows, true, {});
  bool any_differs = false;
  for (size_t i = 0; i < plain.size(); ++i) {
    if (plain[i].defined() && !close(plain[i], unreplayed[i])) any_differs = true;
  }
  EXPECT_TRUE(any_differs);
}

// Tiny models of the Qwen3, Gemma 3 and Phi-3 structures: checkpointing carries the sliding-window
// layers' context (their own rotary angles and mask) into the recomputation, and a few LoRA
// steps over an NF4 base lower the held-out loss of the random model.
class FamilyTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyTraining, CheckpointedGradientsMatchAndLoraLowersTheLoss) {
  const auto dir = testing::fresh_temp_dir("family_training_" + GetParam());
  init_random_model(GetParam(), 3, dir / "model");
  LoadOptions o;
  o.quant = QuantFormat::kNF4;
  LoadedModel m = load_model(dir / "model", o);
  AdapterConfig cfg;
  cfg.rank = 4;
  cfg.seed = 3;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, cfg);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, p] : t.named_parameters()) {
      if (name.find("lora_B") != std::string::npos) p.normal_(0, 0.05, make_generator(5));
    }
  }
  trainer::PackedRows rows = two_rows(*m.tokenizer);
  auto [plain_loss, plain] = loss_and_grads(*m.decoder, t, rows, false, {});
  auto [ckpt_loss, ckpt] = loss_and_grads(*m.decoder, t, rows, true, {});
  expect_same_loss(plain_loss, ckpt_loss);
  expect_same(plain, ckpt, t);

  LoadedModel fresh = load_model(dir / "model", o);
  trainer::Trainable lora = trainer::Trainable::adapter(*fresh.decoder, cfg);
  trainer::TrainingData data;
  trainer::add_file_documents("emma.txt", testing::text_slice("data/jane_austen/emma.txt", 20000), *fresh.tokenizer,
                              {0.1, trainer::EvalSplit::kTail}, data);
  trainer::TrainConfig c = testing::small_config(dir / "out");
  c.steps = 12;
  c.lr = 2e-2;
  c.eval_every = 0;
  c.in_memory = true;
  const trainer::TrainResult r = trainer::train(*fresh.decoder, lora, trainer::pack_documents(data.train, c.seq_len),
                                                trainer::pack_documents(data.eval, c.seq_len), c, {GetParam(), fresh.fingerprint});
  EXPECT_LT(r.eval_loss_after, r.eval_loss_before - 0.05) << r.summary_line();
  std::printf("[ figures  ] %s: %s\n", GetParam().c_str(), r.summary_line().c_str());
  std::filesystem::remove_all(dir);
}

// tiny-phi3: LoRA on the split parts of its fused projections, partial rotary and longrope.
INSTANTIATE_TEST_SUITE_P(Families, FamilyTraining, ::testing::Values("tiny-qwen3", "tiny-gemma3", "tiny-phi3"), [](const auto& info) {
  return info.param == "tiny-qwen3" ? std::string("Qwen3") : info.param == "tiny-gemma3" ? std::string("Gemma3") : std::string("Phi3");
});

}  // namespace
}  // namespace hearth
