// A run's settings are refused before any work when outside their ranges (one message naming
// the option, the value and the range; --seq-len within the model's context); a refused or
// failed run leaves no run folder behind; a run without held-out rows says so instead of
// reporting a perplexity of 1.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "core/error.h"
#include "trainer/packing.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

std::string refusal(const trainer::TrainConfig& cfg) {
  try {
    cfg.validate();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  return "accepted";
}

TEST(TrainConfigRanges, EveryOptionOutsideItsRangeIsNamedWithValueAndRange) {
  const double inf = std::numeric_limits<double>::infinity();
  using Edit = std::function<void(trainer::TrainConfig&)>;
  const std::vector<std::pair<Edit, std::string>> cases = {
      {[](auto& c) { c.steps = std::numeric_limits<int64_t>::max(); }, "--steps must be an integer in 1..1000000, got 9223372036854775807"},
      {[](auto& c) { c.steps = 0; }, "--steps must be an integer in 1..1000000, got 0"},
      {[](auto& c) { c.seq_len = 1000000000; }, "--seq-len must be an integer in 2..1048576, got 1000000000"},
      {[](auto& c) { c.batch = -1; }, "--batch must be an integer in 1..65536, got -1"},
      {[](auto& c) { c.grad_accum = 0; }, "--grad-accum must be an integer in 1..65536, got 0"},
      {[](auto& c) { c.batch = 8192, c.seq_len = 4096; }, "positions per micro-batch"},
      {[inf](auto& c) { c.lr = inf; }, "--lr must be a finite number in (0, 1], got inf"},
      {[](auto& c) { c.lr = std::nan(""); }, "--lr must be a finite number in (0, 1], got nan"},
      {[](auto& c) { c.lr = -1e-4; }, "--lr must be a finite number in (0, 1], got -0.0001"},
      {[](auto& c) { c.warmup = 6; }, "--warmup must be an integer in 0..5, got 6"},
      {[](auto& c) { c.min_lr_ratio = 2; }, "--min-lr-ratio must be a finite number in [0, 1], got 2"},
      {[](auto& c) { c.max_grad_norm = -1; }, "--max-grad-norm"},
      {[](auto& c) { c.eval_every = -2; }, "--eval-every must be an integer in 0..1000000, got -2"},
      {[](auto& c) { c.patience = -1; }, "--patience"},
      {[](auto& c) { c.checkpoint_every = -1; }, "--checkpoint-every"},
      {[inf](auto& c) { c.optimizer.weight_decay = inf; }, "--weight-decay must be a finite number in [0, 1], got inf"},
      {[](auto& c) { c.optimizer.apollo_rank = 0; }, "--apollo-rank must be an integer in 1..65536, got 0"},
      {[](auto& c) { c.optimizer.apollo_update_gap = 0; }, "--apollo-update-gap"},
      {[](auto& c) { c.optimizer.name = "sgd"; }, "unknown optimizer \"sgd\""},
      {[](auto& c) { c.dp.noise = std::nan(""); }, "--dp-noise must be a finite number in [0, 1000000], got nan"},
      {[](auto& c) { c.dp.epsilon = 1, c.dp.delta = 1; }, "--dp-delta must be a finite number in (0, 1), got 1"},
  };
  const trainer::TrainConfig good = testing::small_config("/tmp/unused");
  EXPECT_EQ(refusal(good), "accepted");
  for (const auto& [edit, message] : cases) {
    trainer::TrainConfig c = good;
    c.optimizer.lr = c.lr;
    edit(c);
    const std::string got = refusal(c);
    EXPECT_NE(got.find(message), std::string::npos) << "expected \"" << message << "\", got \"" << got << "\"";
  }
}

TEST(TrainConfigRanges, SequenceLengthIsBoundByTheModelsContext) {
  LoadedModel m = testing::load_stories();
  trainer::TrainConfig c = testing::small_config("/tmp/unused");
  c.seq_len = m.decoder->config().max_position_embeddings;
  EXPECT_NO_THROW(c.validate_for_model(m.decoder->config()));
  c.seq_len += 1;
  try {
    c.validate_for_model(m.decoder->config());
    FAIL() << "a --seq-len beyond the context was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--seq-len 513 is longer than the model's context of 512 positions; use --seq-len 512 or less");
  }
}

struct SmallRun {
  LoadedModel m = testing::load_stories();
  trainer::TrainingData data;
  SmallRun() {
    trainer::add_file_documents("persuasion.txt", testing::text_slice("data/jane_austen/persuasion.txt", 12000), *m.tokenizer,
                                {0.1, trainer::EvalSplit::kTail}, data);
  }
  trainer::TrainResult train(const trainer::TrainConfig& cfg, bool with_eval = true) {
    AdapterConfig a;
    a.rank = 2;
    trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, a);
    return trainer::train(*m.decoder, t, trainer::pack_documents(data.train, cfg.seq_len),
                          trainer::pack_documents(with_eval ? data.eval : std::vector<trainer::TokenDocument>{}, cfg.seq_len),
                          cfg, {"stories260K", m.fingerprint});
  }
};

TEST(TrainRunFolder, ARefusedResumeOrAFailedStartLeavesNoFolder) {
  const fs::path dir = testing::fresh_temp_dir("run_folder");
  SmallRun run;
  trainer::TrainConfig cfg = testing::small_config(dir / "a" / "b" / "out");
  cfg.resume = true;  // nothing to resume from
  EXPECT_THROW(run.train(cfg), Error);
  EXPECT_TRUE(fs::is_empty(dir)) << "left " << fs::directory_iterator(dir)->path();
  cfg.resume = false;
  cfg.seq_len = 4096;  // beyond stories260K's 512 positions: refused before anything is written
  EXPECT_THROW(run.train(cfg), Error);
  EXPECT_TRUE(fs::is_empty(dir));
  // A run that checkpointed keeps its folder when it stops: that is its resumable state.
  cfg = testing::small_config(dir / "kept");
  cfg.stop_after_steps = 2;
  EXPECT_FALSE(run.train(cfg).completed);
  EXPECT_TRUE(fs::exists(dir / "kept" / "checkpoint" / "state.json"));
  fs::remove_all(dir);
}

TEST(TrainResultReport, NoHeldOutRowsIsSaidNotReportedAsPerplexityOne) {
  const fs::path dir = testing::fresh_temp_dir("no_eval");
  SmallRun run;
  const trainer::TrainResult r = run.train(testing::small_config(dir / "out"), /*with_eval=*/false);
  ASSERT_TRUE(r.completed);
  EXPECT_EQ(r.eval_rows, 0);
  const Json j = r.to_json();
  EXPECT_TRUE(j["eval_ppl_before"].is_null() && j["eval_ppl_after"].is_null()) << j.dump();
  EXPECT_NE(r.summary_line().find("no held-out rows (perplexity not measured)"), std::string::npos) << r.summary_line();
  EXPECT_EQ(r.summary_line().find("1.000"), std::string::npos) << r.summary_line();
  const trainer::TrainResult with = run.train(testing::small_config(dir / "out2"));
  EXPECT_GT(with.eval_rows, 0);
  EXPECT_NE(with.summary_line().find("held-out perplexity"), std::string::npos) << with.summary_line();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
