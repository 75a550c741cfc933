// `hearth model init --arch custom` and `hearth train --eval-data` through the real binary: the
// model has the asked shape, and the held-out rows come from the --eval-data files only.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_runner.h"
#include "core/json.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::run_hearth;

void write_lines(const fs::path& path, const std::string& line, int n) {
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) out << line << " " << i << "\n";
}

TEST(CliTrainEvalData, CustomModelTrainsOnDataAndEvaluatesOnEvalData) {
  const fs::path dir = testing::fresh_temp_dir("cli_eval_data");
  auto init = run_hearth({"model", "init", "--arch", "custom", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads",
                          "1", "--intermediate", "48", "--tokenizer-from", testing::stories260k_dir().string(), "--out",
                          (dir / "m").string(), "--json"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const Json shape = parse_json(init.out.substr(init.out.rfind('{')), "model init output");
  EXPECT_EQ(shape.at("layers"), 1);
  EXPECT_EQ(shape.at("hidden"), 32);
  EXPECT_EQ(shape.at("kv_heads"), 1);
  EXPECT_EQ(shape.at("vocab"), 512);

  write_lines(dir / "train.txt", "The lady walked to the house and sat down by the fire.", 40);
  write_lines(dir / "heldout.txt", "Sir Walter was vain.", 1);
  auto train = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"train", "--model", (dir / "m").string(), "--data", (dir / "train.txt").string(),
                                     "--method", "full", "--optim", "apollo", "--apollo-rank", "4", "--steps", "2", "--warmup", "0",
                                     "--seq-len", "32", "--batch", "2", "--eval-every", "0", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_hearth(args);
  };
  // The held-out file is one short line: one row; all 40 training lines are trained on.
  auto with = train({"--eval-data", (dir / "heldout.txt").string(), "--out", (dir / "with").string()});
  ASSERT_EQ(with.exit_code, 0) << with.err;
  EXPECT_NE(with.err.find(", 1 held-out rows of 32 positions"), std::string::npos) << with.err;
  // Without it, the last 10% of train.txt is held out instead, so fewer tokens are trained.
  auto without = train({"--out", (dir / "without").string()});
  ASSERT_EQ(without.exit_code, 0) << without.err;
  auto trained_tokens = [](const std::string& err) {
    const size_t at = err.find("training rows (");
    return at == std::string::npos ? -1L : std::stol(err.substr(at + 15));
  };
  EXPECT_GT(trained_tokens(with.err), trained_tokens(without.err));
  EXPECT_TRUE(fs::exists(dir / "with" / "metrics.jsonl"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
