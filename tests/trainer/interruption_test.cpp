// A stop request inside a training step (at an interruption point between blocks, loss tiles or
// micro-batches) abandons the step without a trace: the checkpoint holds the last whole step, and
// a run stopped like that at any point and resumed ends bitwise equal to an uninterrupted one,
// dropout draws included.
#include <gtest/gtest.h>

#include <map>

#include "trainer/interruption.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {

struct TrainedRun {
  std::vector<at::Tensor> params;
  trainer::TrainResult result;
};

TrainedRun run_interrupted(const trainer::TrainConfig& cfg) {
  LoadedModel m = testing::load_stories(/*nf4=*/true);
  trainer::TrainingData data;
  trainer::add_file_documents("emma.txt", testing::text_slice("data/jane_austen/emma.txt", 20000), *m.tokenizer,
                              {0.1, trainer::EvalSplit::kTail}, data);
  AdapterConfig a;
  a.rank = 4;
  a.alpha = 8;
  a.dropout = 0.1;  // random draws inside the step: an abandoned step must give them back
  a.seed = 5;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, a);
  TrainedRun r;
  r.result = trainer::train(*m.decoder, t, trainer::pack_documents(data.train, cfg.seq_len),
                            trainer::pack_documents(data.eval, cfg.seq_len), cfg, {"stories260K", m.fingerprint});
  for (const auto& [name, p] : t.named_parameters()) r.params.push_back(p.detach().clone());
  return r;
}

trainer::TrainConfig in_memory_config(std::map<int64_t, std::string>& store) {
  trainer::TrainConfig cfg = testing::small_config("unused");
  cfg.in_memory = true;
  cfg.save_checkpoint = [&store](int64_t step, const std::string& bytes) { store[step] = bytes; };
  cfg.load_checkpoint = [&store] { return store.rbegin()->second; };
  return cfg;
}

TEST(Interruption, StopsInsideStepsAndResumesBitwiseEqual) {
  std::map<int64_t, std::string> store;
  const trainer::TrainConfig cfg = in_memory_config(store);
  const TrainedRun straight = run_interrupted(cfg);
  ASSERT_TRUE(straight.result.completed);

  // Each run trains `after` more steps, then stops at the point-th time the condition is asked:
  // the 1st ask is the check before the next step, the 2nd and later are interruption points
  // inside that step (blocks, loss tiles, micro-batches) or, past its end, the next check.
  int64_t start = 0;
  bool resume = false;
  for (auto [after, point] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {1, 9}, {1, 30}, {2, 5}}) {
    trainer::TrainConfig c = cfg;
    c.resume = resume;
    int64_t steps_seen = 0, since_step = 0;
    c.on_step = [&](const Json& line) {
      if (line.contains("loss")) ++steps_seen, since_step = 0;
    };
    c.should_stop = [&, after = after, point = point] { return steps_seen >= after && ++since_step >= point; };
    const TrainedRun stopped = run_interrupted(c);
    ASSERT_FALSE(stopped.result.completed);
    EXPECT_EQ(stopped.result.stop_reason, "interrupted");
    ASSERT_TRUE(stopped.result.checkpoint_saved);
    EXPECT_EQ(stopped.result.steps_done, start + after) << "after " << after << ", point " << point;
    EXPECT_EQ(store.rbegin()->first, stopped.result.steps_done);  // the last whole step
    start = stopped.result.steps_done;
    resume = true;
  }
  trainer::TrainConfig c = cfg;
  c.resume = true;
  const TrainedRun last = run_interrupted(c);
  ASSERT_TRUE(last.result.completed);
  ASSERT_EQ(last.params.size(), straight.params.size());
  for (size_t i = 0; i < last.params.size(); ++i) EXPECT_TRUE(at::equal(last.params[i], straight.params[i])) << i;
}

// Stopped during the final evaluation, after its last step: the resumed run trains no step, only
// evaluates, and its training loss is still the last step's (it was 0: found when an engine job's
// last slice happened to start there).
TEST(Interruption, ResumedAfterTheLastStepKeepsTheTrainingLoss) {
  std::map<int64_t, std::string> store;
  const trainer::TrainConfig cfg = in_memory_config(store);
  const TrainedRun straight = run_interrupted(cfg);
  ASSERT_TRUE(straight.result.completed);
  ASSERT_GT(straight.result.train_loss, 0.0);

  trainer::TrainConfig c = cfg;
  int64_t steps_seen = 0;
  c.on_step = [&](const Json& line) {
    if (line.contains("loss")) ++steps_seen;
  };
  c.should_stop = [&] { return steps_seen >= cfg.steps; };  // any ask after the last step: the final evaluation
  const TrainedRun stopped = run_interrupted(c);
  ASSERT_FALSE(stopped.result.completed);
  ASSERT_EQ(stopped.result.steps_done, cfg.steps);

  trainer::TrainConfig again = cfg;
  again.resume = true;
  const TrainedRun resumed = run_interrupted(again);
  ASSERT_TRUE(resumed.result.completed);
  // Six steps: the last tenth is the last step alone, so the two are the same number.
  EXPECT_EQ(resumed.result.train_loss, straight.result.train_loss);
  EXPECT_EQ(resumed.result.eval_loss_after, straight.result.eval_loss_after);
}

// A run of 30 steps reports the mean loss of its last three; stopped after 17 and resumed, the
// second process logs only 13 steps, yet reports the same mean (the losses travel in the
// checkpoint). Same steps, same arithmetic, same order: the numbers are equal exactly.
TEST(Interruption, ResumedRunReportsTheWholeRunsTrainingLoss) {
  std::map<int64_t, std::string> store;
  trainer::TrainConfig cfg = in_memory_config(store);
  cfg.steps = 30;
  const TrainedRun straight = run_interrupted(cfg);
  ASSERT_TRUE(straight.result.completed);

  trainer::TrainConfig c = cfg;
  int64_t steps_seen = 0;
  c.on_step = [&](const Json& line) {
    if (line.contains("loss")) ++steps_seen;
  };
  c.should_stop = [&] { return steps_seen >= 17; };
  ASSERT_EQ(run_interrupted(c).result.steps_done, 17);
  trainer::TrainConfig again = cfg;
  again.resume = true;
  std::vector<double> resumed_losses;
  again.on_step = [&](const Json& line) {
    if (line.contains("loss")) resumed_losses.push_back(line["loss"].get<double>());
  };
  const TrainedRun resumed = run_interrupted(again);
  ASSERT_TRUE(resumed.result.completed);
  ASSERT_EQ(resumed_losses.size(), 13u);
  const double last_three = (resumed_losses[10] + resumed_losses[11] + resumed_losses[12]) / 3;
  EXPECT_EQ(resumed.result.train_loss, straight.result.train_loss);
  EXPECT_DOUBLE_EQ(resumed.result.train_loss, last_three);
}

TEST(Interruption, StopDuringTheFirstEvaluationSavesNothing) {
  std::map<int64_t, std::string> store;
  trainer::TrainConfig cfg = in_memory_config(store);
  cfg.should_stop = [] { return true; };
  const TrainedRun r = run_interrupted(cfg);
  EXPECT_FALSE(r.result.completed);
  EXPECT_FALSE(r.result.checkpoint_saved);
  EXPECT_EQ(r.result.steps_done, 0);
  EXPECT_TRUE(store.empty());
}

TEST(Interruption, PointThrowsOnlyWhileTheConditionHolds) {
  EXPECT_NO_THROW(trainer::interruption_point());  // no condition set
  bool stop = false;
  {
    trainer::ScopedStopCondition outer([&] { return stop; });
    EXPECT_NO_THROW(trainer::interruption_point());
    stop = true;
    EXPECT_THROW(trainer::interruption_point(), trainer::StepInterrupted);
    {
      trainer::ScopedStopCondition inner([] { return false; });
      EXPECT_NO_THROW(trainer::interruption_point());
    }
    EXPECT_THROW(trainer::interruption_point(), trainer::StepInterrupted);  // the outer one is back
  }
  EXPECT_NO_THROW(trainer::interruption_point());
}

}  // namespace
}  // namespace hearth
