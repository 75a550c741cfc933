// Whole training runs on the real stories260K model: a stopped and resumed run ends bitwise
// equal to an uninterrupted one; a short LoRA run on Austen lowers the held-out loss; the
// output folder holds the adapter, metrics and the loss curve.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/atomic_file.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "trainer/stop_signal.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

trainer::TrainingData austen_slice(const Tokenizer& tok, size_t bytes) {
  trainer::TrainingData data;
  trainer::add_file_documents("prideprejudice.txt", testing::text_slice("data/jane_austen/prideprejudice.txt", bytes), tok,
                              {0.1, trainer::EvalSplit::kTail}, data);
  return data;
}

AdapterConfig lora_config() {
  AdapterConfig a;
  a.rank = 4;
  a.alpha = 8;
  a.dropout = 0.1;
  a.seed = 7;
  return a;
}

// One run in a fresh model; `method` "lora" (nf4 base) or "full" (fp32 base).
trainer::TrainResult run(const std::string& method, const trainer::TrainConfig& cfg, size_t bytes = 20000) {
  LoadedModel m = testing::load_stories(method == "lora");
  trainer::TrainingData data = austen_slice(*m.tokenizer, bytes);
  trainer::PackedRows train_rows = trainer::pack_documents(data.train, cfg.seq_len);
  trainer::PackedRows eval_rows = trainer::pack_documents(data.eval, cfg.seq_len);
  trainer::Trainable t = method == "full" ? trainer::Trainable::full(*m.decoder)
                                          : trainer::Trainable::adapter(*m.decoder, lora_config());
  return trainer::train(*m.decoder, t, train_rows, eval_rows, cfg, {"stories260K", m.fingerprint});
}

void expect_same_tensors(const fs::path& a, const fs::path& b) {
  auto fa = SafetensorsFile::open(a), fb = SafetensorsFile::open(b);
  ASSERT_EQ(fa->entries().size(), fb->entries().size());
  ASSERT_GT(fa->entries().size(), 0u);
  for (const auto& e : fa->entries()) {
    ASSERT_TRUE(fb->contains(e.name)) << e.name;
    EXPECT_TRUE(at::equal(fa->tensor(e.name), fb->tensor(e.name))) << e.name;
  }
}

void expect_resume_is_bitwise(const std::string& method, const std::string& optim, const std::string& file) {
  const fs::path dir = testing::fresh_temp_dir("resume_" + method + "_" + optim);
  trainer::TrainConfig cfg = testing::small_config(dir / "straight");
  cfg.optimizer.name = optim;
  cfg.optimizer.apollo_rank = 2;
  cfg.optimizer.apollo_update_gap = 2;  // a new projection across the stop
  cfg.grad_checkpoint = trainer::GradCheckpoint::kOn;
  ASSERT_TRUE(run(method, cfg).completed);

  trainer::TrainConfig first = cfg;
  first.out = dir / "resumed";
  first.stop_after_steps = 3;
  trainer::TrainResult stopped = run(method, first);
  EXPECT_FALSE(stopped.completed);
  EXPECT_EQ(stopped.stop_reason, "step_limit");
  EXPECT_EQ(stopped.steps_done, 3);
  EXPECT_TRUE(fs::exists(dir / "resumed" / "checkpoint" / "state.json"));

  trainer::TrainConfig second = cfg;
  second.out = dir / "resumed";
  second.resume = true;
  trainer::TrainResult resumed = run(method, second);
  EXPECT_TRUE(resumed.completed);
  EXPECT_EQ(resumed.steps_done, cfg.steps);
  expect_same_tensors(dir / "straight" / file, dir / "resumed" / file);
  fs::remove_all(dir);
}

TEST(TrainerRun, StoppedAndResumedLoraRunIsBitwiseEqual) {
  expect_resume_is_bitwise("lora", "apollo", "adapter_model.safetensors");
}

TEST(TrainerRun, StoppedAndResumedFullRunIsBitwiseEqual) {
  expect_resume_is_bitwise("full", "adamw", "model.safetensors");
}

TEST(TrainerRun, StopSignalSavesACheckpoint) {
  const fs::path dir = testing::fresh_temp_dir("signal");
  trainer::TrainConfig cfg = testing::small_config(dir);
  // The signal arrives after step 2 (as SIGINT would set it).
  cfg.on_step = [](const Json& line) {
    if (line.value("step", 0) == 2 && line.contains("loss")) trainer::request_stop();
  };
  trainer::TrainResult r = run("lora", cfg);
  trainer::clear_stop_request();
  EXPECT_FALSE(r.completed);
  EXPECT_EQ(r.stop_reason, "interrupted");
  EXPECT_EQ(r.steps_done, 2);
  EXPECT_TRUE(r.checkpoint_saved);
  EXPECT_TRUE(fs::exists(dir / "checkpoint" / "optimizer"));
  fs::remove_all(dir);
}

TEST(TrainerRun, StopBeforeTheFirstStepLeavesNothingToResume) {
  const fs::path dir = testing::fresh_temp_dir("signal_early");
  trainer::TrainConfig cfg = testing::small_config(dir);
  trainer::request_stop();
  trainer::TrainResult r = run("lora", cfg);
  trainer::clear_stop_request();
  EXPECT_FALSE(r.completed);
  EXPECT_FALSE(r.checkpoint_saved);
  EXPECT_EQ(r.steps_done, 0);
  EXPECT_FALSE(fs::exists(dir / "checkpoint"));
  fs::remove_all(dir);
}

TEST(TrainerRun, ResumeWithOtherSettingsIsRefused) {
  const fs::path dir = testing::fresh_temp_dir("resume_other");
  trainer::TrainConfig cfg = testing::small_config(dir);
  cfg.stop_after_steps = 2;
  EXPECT_FALSE(run("lora", cfg).completed);
  cfg.stop_after_steps = 0;
  cfg.resume = true;
  cfg.lr *= 2;
  EXPECT_THROW(run("lora", cfg), Error);
  fs::remove_all(dir);
}

// The checkpoint's recent losses are read like any other field of a file on disk: a value that is
// not a loss is refused as corruption, naming the field, before anything is resumed.
TEST(TrainerRun, ResumeRefusesACheckpointWithMalformedRecentLosses) {
  const fs::path dir = testing::fresh_temp_dir("resume_losses");
  trainer::TrainConfig cfg = testing::small_config(dir);
  cfg.stop_after_steps = 2;
  EXPECT_FALSE(run("lora", cfg).completed);
  const fs::path state = dir / "checkpoint" / "state.json";
  Json j = read_json_file(state);
  ASSERT_EQ(j.at("recent_losses").size(), 1u);  // six steps keep their last one
  cfg.stop_after_steps = 0;
  cfg.resume = true;
  for (const Json& bad : {Json::array({"x"}), Json::array({-1.0}), Json(1.5), Json(std::vector<double>(2000, 1.0))}) {
    j["recent_losses"] = bad;
    write_file_atomic(state, j.dump());
    try {
      run("lora", cfg);
      ADD_FAILURE() << "accepted " << bad.dump().substr(0, 40);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
      EXPECT_NE(std::string(e.what()).find("recent_losses"), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

TEST(TrainerRun, ShortLoraRunOnAustenLowersHeldOutLoss) {
  const fs::path dir = testing::fresh_temp_dir("austen");
  trainer::TrainConfig cfg = testing::small_config(dir);
  cfg.steps = 40;
  cfg.seq_len = 64;
  cfg.batch = 4;
  cfg.grad_accum = 1;
  cfg.lr = 1e-2;
  cfg.eval_every = 20;
  trainer::TrainResult r = run("lora", cfg, 60000);
  ASSERT_TRUE(r.completed);
  EXPECT_LT(r.eval_loss_after, r.eval_loss_before - 0.1) << r.to_json().dump();
  EXPECT_TRUE(fs::exists(dir / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "adapter_config.json"));
  EXPECT_TRUE(fs::exists(dir / "loss_curve.svg"));
  EXPECT_TRUE(fs::exists(dir / "training_summary.json"));
  EXPECT_FALSE(fs::exists(dir / "checkpoint"));
  const std::string metrics = read_file(dir / "metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 40 + 3);  // 40 steps, 3 evaluations
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
