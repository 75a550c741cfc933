// Runs that keep nothing on disk (a user's data from the vault): checkpoints go to the
// caller as bytes, and a run stopped and resumed from them ends bitwise equal to a straight
// one, DP-SGD included (its sampling and noise generator is part of the checkpoint).
#include <gtest/gtest.h>

#include <map>

#include "trainer/trainer.h"
#include "trainer/training_checkpoint.h"
#include "trainer/training_data.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

std::vector<at::Tensor> run(trainer::TrainConfig cfg, trainer::TrainResult* result = nullptr) {
  LoadedModel m = testing::load_stories(/*nf4=*/true);
  trainer::TrainingData data;
  trainer::add_file_documents("emma.txt", testing::text_slice("data/jane_austen/emma.txt", 20000), *m.tokenizer,
                              {0.1, trainer::EvalSplit::kTail}, data);
  AdapterConfig a;
  a.rank = 4;
  a.alpha = 8;
  a.dropout = 0.1;
  a.seed = 5;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, a);
  trainer::TrainResult r = trainer::train(*m.decoder, t, trainer::pack_documents(data.train, cfg.seq_len),
                                          trainer::pack_documents(data.eval, cfg.seq_len), cfg, {"stories260K", m.fingerprint});
  if (result) *result = r;
  std::vector<at::Tensor> out;
  for (const auto& [name, p] : t.named_parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(InMemoryRun, StoppedAndResumedFromBytesIsBitwiseEqualAndWritesNothing) {
  const fs::path dir = testing::fresh_temp_dir("in_memory_run");
  trainer::TrainConfig cfg = testing::small_config(dir / "never");
  cfg.in_memory = true;
  cfg.dp.noise = 0.7;
  cfg.dp.seed = 3;
  std::map<int64_t, std::string> store;  // what a vault would seal
  cfg.save_checkpoint = [&](int64_t step, const std::string& bytes) { store[step] = bytes; };
  cfg.load_checkpoint = [&] { return store.rbegin()->second; };

  const std::vector<at::Tensor> straight = run(cfg);
  EXPECT_TRUE(store.empty());

  trainer::TrainConfig first = cfg;
  first.stop_after_steps = 3;
  trainer::TrainResult stopped;
  run(first, &stopped);
  EXPECT_FALSE(stopped.completed);
  ASSERT_EQ(store.size(), 1u);
  EXPECT_EQ(store.begin()->first, 3);

  trainer::TrainConfig second = cfg;
  second.resume = true;
  trainer::TrainResult resumed;
  const std::vector<at::Tensor> after = run(second, &resumed);
  EXPECT_TRUE(resumed.completed);
  ASSERT_EQ(after.size(), straight.size());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(at::equal(after[i], straight[i])) << i;
  EXPECT_EQ(resumed.privacy["steps"], cfg.steps);  // ε covers the steps before the stop too
  EXPECT_FALSE(fs::exists(dir / "never"));

  // A checkpoint of other settings, or damaged bytes, is refused.
  trainer::TrainConfig other = second;
  other.lr *= 2;
  EXPECT_THROW(run(other), Error);
  store.rbegin()->second.resize(store.rbegin()->second.size() / 2);
  EXPECT_THROW(run(second), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
