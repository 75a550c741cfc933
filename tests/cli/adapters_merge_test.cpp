// `hearth adapters merge --requantize nf4 --eval-data` through the real binary on stories260K: a
// trained adapter is folded into a re-quantized folder, and the perplexities it reports are the
// ones the folder and the base actually have.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_runner.h"
#include "core/json.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::run_hearth;

using testing::last_json_line;
using testing::write_text_slice;

double ppl_of(const fs::path& model, const fs::path& data) {
  auto r = run_hearth({"ppl", "--model", model.string(), "--data", data.string(), "--ctx", "64", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? last_json_line(r.out).at("ppl").get<double>() : -1;
}

TEST(CliAdaptersMerge, RequantizedFolderReportsItsOwnPerplexity) {
  const fs::path dir = testing::fresh_temp_dir("cli_merge");
  const fs::path text = dir / "stories.txt";
  write_text_slice(text, 120);
  const std::string model = testing::stories260k_dir().string();
  auto train = run_hearth({"train", "--model", model, "--quant", "nf4", "--data", text.string(), "--method", "lora", "--rank",
                           "4", "--steps", "12", "--warmup", "0", "--lr", "3e-3", "--seq-len", "64", "--batch", "2",
                           "--eval-every", "0", "--threads", "1", "--out", (dir / "adapter").string()});
  ASSERT_EQ(train.exit_code, 0) << train.err;

  const fs::path merged = dir / "merged";
  auto merge = run_hearth({"adapters", "merge", "--model", model, "--quant", "nf4", "--adapter", (dir / "adapter").string(),
                           "--out", merged.string(), "--requantize", "nf4", "--eval-data", text.string(), "--ctx", "64",
                           "--json"});
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  const Json r = last_json_line(merge.out);
  EXPECT_EQ(r.at("format"), "nf4");
  EXPECT_GT(r.at("requantization_relative_frobenius_error").get<double>(), 0.0);
  // The adapter was trained on this text, so it lowers the base's perplexity; the figure for the
  // merged folder is what `hearth ppl` measures on the folder itself.
  EXPECT_LT(r.at("eval_ppl_adapted").get<double>(), r.at("eval_ppl_base").get<double>());
  EXPECT_NEAR(r.at("eval_ppl_merged").get<double>(), ppl_of(merged, text), 1e-6);
  EXPECT_NEAR(r.at("merged_ppl_change_pct").get<double>(),
              100.0 * (r.at("eval_ppl_merged").get<double>() / r.at("eval_ppl_adapted").get<double>() - 1.0), 1e-9);
  EXPECT_TRUE(fs::exists(merged / "model.safetensors"));
  EXPECT_NE(testing::slurp(merged / "config.json").find("\"nf4\""), std::string::npos);

  // An eval file shorter than one window fails before anything is written.
  std::ofstream(dir / "short.txt") << "Tom ran.\n";
  auto bad = run_hearth({"adapters", "merge", "--model", model, "--quant", "nf4", "--adapter", (dir / "adapter").string(),
                         "--out", (dir / "not_written").string(), "--requantize", "nf4", "--eval-data",
                         (dir / "short.txt").string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("fewer than 257 tokens"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "not_written"));

  // Unknown formats and a missing eval file: one error naming the value, nothing written.
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad_options = {
      {{"--requantize", "nf3"}, "nf3"},
      {{"--requantize", "nf4", "--out-embeddings", "fp8"}, "fp8"},
      {{"--eval-data", (dir / "missing.txt").string()}, "missing.txt"}};
  for (const auto& [extra, named] : bad_options) {
    std::vector<std::string> args = {"adapters", "merge", "--model", model, "--quant", "nf4", "--adapter",
                                     (dir / "adapter").string(), "--out", (dir / "not_written").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_hearth(args);
    EXPECT_NE(r.exit_code, 0) << named;
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "not_written")) << named;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
