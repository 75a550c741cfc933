// `hearth quantize --method ... --calibrate ... --bits ...` through the real binary on
// stories260K: the folder it writes is the one it describes, and bad requests give one error
// line, a non-zero exit and no folder.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_runner.h"
#include "core/json.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::run_hearth;

// Calibration text: the lines of valid_a.txt from 3000 on.
fs::path calibration_file(const fs::path& dir) {
  std::ifstream in(asset_path("data/tinystories/valid_a.txt"));
  const fs::path path = dir / "calibration.txt";
  std::ofstream out(path);
  std::string line;
  for (int n = 0; std::getline(in, line); ++n)
    if (n >= 3000) out << line << "\n";
  return path;
}

using testing::last_json_line;

TEST(CliQuantize, CalibratedMixedPrecisionFolderIsWhatItReports) {
  const fs::path dir = testing::fresh_temp_dir("cli_quantize");
  const fs::path out = dir / "q";
  auto r = run_hearth({"quantize", "--model", testing::stories260k_dir().string(), "--method", "awq-gptq", "--calibrate",
                       calibration_file(dir).string(), "--calib-tokens", "2048", "--bits", "4.6", "--threads", "1",
                       "--out", out.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = last_json_line(r.out);
  EXPECT_EQ(j.at("method"), "awq-gptq");
  EXPECT_LE(j.at("bits_per_weight").get<double>(), 4.6);
  EXPECT_EQ(j.at("calibration_tokens").get<int64_t>(), 2048);
  const Json q = read_json_file(out / "config.json")["hearth_quantization"];
  EXPECT_EQ(q.at("recipe"), j.at("recipe"));
  // --propagate auto without distillation: each block calibrated on the quantized blocks' output.
  EXPECT_EQ(q.at("recipe").at("calibration").at("propagation"), "quantized");
  // The folder serves: perplexity through the CLI on a few lines.
  std::ofstream(dir / "eval.txt") << "Once upon a time, there was a little girl named Lily.\nShe liked to play outside.\n";
  auto ppl = run_hearth({"ppl", "--model", out.string(), "--data", (dir / "eval.txt").string(), "--ctx", "16", "--json"});
  EXPECT_EQ(ppl.exit_code, 0) << ppl.err;
}

// The recipe that takes stories260K under 4.5 bits with the least loss (docs/quantization.md):
// nf4-32 projections and table, a budget for int8 where it counts.
TEST(CliQuantize, Nf4x32BudgetFolderKeepsItsFormatsAndServes) {
  const fs::path dir = testing::fresh_temp_dir("cli_quantize_nf4_32");
  const fs::path out = dir / "q";
  auto r = run_hearth({"quantize", "--model", testing::stories260k_dir().string(), "--format", "nf4-32", "--method", "gptq",
                       "--calibrate", calibration_file(dir).string(), "--calib-tokens", "2048", "--bits", "4.5", "--threads",
                       "1", "--out", out.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = last_json_line(r.out);
  EXPECT_LE(j.at("bits_per_weight").get<double>(), 4.5);
  // Every matrix nf4-32 is 4.37 bits here, so the budget buys some int8.
  EXPECT_GT(j.at("bits_per_weight").get<double>(), 4.4);
  const Json q = read_json_file(out / "config.json")["hearth_quantization"];
  EXPECT_EQ(q.at("format"), "nf4-32");
  EXPECT_EQ(q.at("block_size").get<int64_t>(), 32);
  std::ofstream(dir / "eval.txt") << "Once upon a time, there was a little girl named Lily.\nShe liked to play outside.\n";
  auto ppl = run_hearth({"ppl", "--model", out.string(), "--data", (dir / "eval.txt").string(), "--ctx", "16", "--json"});
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  EXPECT_LT(last_json_line(ppl.out).at("ppl").get<double>(), 100.0);
}

// The table split under the budget (docs/quantization.md, "The split table"): the report names
// its int8 rows, and the folder serves prompts and generation.
TEST(CliQuantize, SplitTableFolderReportsItsRowsAndServes) {
  const fs::path dir = testing::fresh_temp_dir("cli_quantize_split");
  const fs::path out = dir / "q";
  auto r = run_hearth({"quantize", "--model", testing::stories260k_dir().string(), "--format", "nf4-32", "--method", "gptq",
                       "--calibrate", calibration_file(dir).string(), "--calib-tokens", "2048", "--bits", "4.5", "--split-table",
                       "auto", "--threads", "1", "--out", out.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = last_json_line(r.out);
  EXPECT_LE(j.at("bits_per_weight").get<double>(), 4.5);
  EXPECT_GT(j.at("split_table_rows").get<int64_t>(), 0);
  EXPECT_NE(r.out.find(std::to_string(j.at("split_table_rows").get<int64_t>()) + " table rows at int8"), std::string::npos) << r.out;
  EXPECT_EQ(read_json_file(out / "config.json")["hearth_quantization"].at("table_split"), "int8");
  std::ofstream(dir / "eval.txt") << "Once upon a time, there was a little girl named Lily.\nShe liked to play outside.\n";
  auto ppl = run_hearth({"ppl", "--model", out.string(), "--data", (dir / "eval.txt").string(), "--ctx", "16", "--json"});
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  EXPECT_LT(last_json_line(ppl.out).at("ppl").get<double>(), 100.0);
  auto gen = run_hearth({"generate", "--model", out.string(), "--prompt", "Once upon a time", "--max-tokens", "12", "--temperature", "0"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_GT(gen.out.size(), std::string("Once upon a time").size()) << gen.out;
}

TEST(CliQuantize, DistilledFolderRecordsItsDistillation) {
  const fs::path dir = testing::fresh_temp_dir("cli_quantize_distill");
  const fs::path out = dir / "q";
  auto r = run_hearth({"quantize", "--model", testing::stories260k_dir().string(), "--calibrate", calibration_file(dir).string(),
                       "--calib-tokens", "1024", "--distill-steps", "3", "--distill-batch", "2", "--threads", "1", "--out",
                       out.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json recipe = read_json_file(out / "config.json")["hearth_quantization"]["recipe"];
  EXPECT_EQ(recipe.at("distillation").at("steps").get<int64_t>(), 3);
  EXPECT_EQ(recipe.at("distillation").at("batch").get<int64_t>(), 2);
  EXPECT_EQ(recipe.at("method"), "rtn");
  // --propagate auto: a distillation's start is fitted to the full-precision activations.
  EXPECT_EQ(recipe.at("distillation").at("start_propagation"), "full_precision");
  EXPECT_EQ(recipe.at("distillation").at("average").get<double>(), 0.25);
}

void expect_one_error(const std::vector<std::string>& args, const std::string& needle, const fs::path& out) {
  auto r = run_hearth(args);
  EXPECT_EQ(r.signal, 0) << "crashed: " << r.err;
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(testing::count_error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
  EXPECT_FALSE(fs::exists(out)) << "wrote " << out;
}

TEST(CliQuantize, BadRequestsGiveOneErrorAndNoFolder) {
  const fs::path dir = testing::fresh_temp_dir("cli_quantize_bad");
  const fs::path out = dir / "q";
  const std::string model = testing::stories260k_dir().string(), calib = calibration_file(dir).string();
  const auto q = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"quantize", "--model", model, "--out", out.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  expect_one_error(q({"--method", "gptq"}), "--calibrate", out);
  expect_one_error(q({"--method", "smoothquant"}), "smoothquant", out);
  expect_one_error(q({"--method", "awq", "--calibrate", (dir / "none.txt").string()}), "not found", out);
  expect_one_error(q({"--method", "awq", "--calibrate", calib, "--calib-tokens", "-5"}), "--calib-tokens", out);
  expect_one_error(q({"--method", "awq", "--calibrate", calib, "--calib-tokens", "99999999999"}), "--calib-tokens", out);
  expect_one_error(q({"--bits", "1e9"}), "--bits", out);
  expect_one_error(q({"--bits", "nan"}), "--bits", out);
  expect_one_error(q({"--bits", "2.5"}), "budget", out);
  expect_one_error(q({"--bits", "4.5", "--embeddings", "bf16"}), "--embeddings", out);
  expect_one_error(q({"--to", "gguf", "--format", "q4_0", "--method", "gptq", "--calibrate", calib}), "--to hearth", out);
  expect_one_error(q({"--to", "gguf", "--format", "q4_0", "--distill-steps", "3"}), "--to hearth", out);
  expect_one_error(q({"--distill-steps", "3"}), "--calibrate", out);
  expect_one_error(q({"--split-table", "auto", "--format", "nf4-32"}), "--calibrate", out);
  expect_one_error(q({"--split-table", "many", "--calibrate", calib}), "--split-table", out);
  expect_one_error(q({"--split-table", "0", "--calibrate", calib}), "--split-table", out);
  expect_one_error(q({"--split-table", "99999999999999999999", "--calibrate", calib}), "--split-table", out);
  expect_one_error(q({"--split-table", "auto", "--calibrate", calib}), "--bits", out);
  expect_one_error(q({"--to", "gguf", "--format", "q4_0", "--split-table", "auto"}), "--to hearth", out);
  expect_one_error(q({"--distill-steps", "-1", "--calibrate", calib}), "--distill-steps", out);
  expect_one_error(q({"--distill-steps", "3", "--distill-lr", "0", "--calibrate", calib}), "--distill-lr", out);
  expect_one_error(q({"--distill-steps", "3", "--distill-lr", "inf", "--calibrate", calib}), "--distill-lr", out);
  expect_one_error(q({"--distill-steps", "3", "--distill-batch", "99999999", "--calibrate", calib}), "--distill-batch", out);
  expect_one_error(q({"--distill-steps", "3", "--distill-average", "1.5", "--calibrate", calib}), "--distill-average", out);
  expect_one_error(q({"--method", "gptq", "--propagate", "fast", "--calibrate", calib}), "--propagate", out);
  expect_one_error(q({"--distill-steps", "3", "--distill-average", "nan", "--calibrate", calib}), "--distill-average", out);
  // The seed is an unsigned 64-bit number: a sign or text is the option parser's refusal.
  expect_one_error(q({"--distill-steps", "3", "--distill-seed", "-1", "--calibrate", calib}), "--distill-seed", out);
  expect_one_error(q({"--distill-steps", "3", "--distill-seed", "one", "--calibrate", calib}), "--distill-seed", out);
}

}  // namespace
}  // namespace hearth
