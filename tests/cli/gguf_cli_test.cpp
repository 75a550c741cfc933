// GGUF through the real `hearth` binary: a merged GGUF computes what base + adapter computes, a
// DoRA adapter is refused by the LoRA export, and bad GGUF input is one `error:` line with a
// non-zero exit and nothing written.
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

// One line on stderr that starts with "error:" and contains `needle`, and a non-zero exit.
void expect_one_error(const testing::CliResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.signal, 0);
  const size_t at = r.err.find("error:");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
  EXPECT_NE(line.find(needle), std::string::npos) << line;
}

class CliGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("cli_gguf");
    base_ = dir_ / "base.gguf";
    auto r = run_hearth({"quantize", "--model", testing::stories260k_dir().string(), "--to", "gguf", "--format", "f32", "--out", base_.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    text_ = dir_ / "text.txt";
    write_text_slice(text_, 120);
  }
  void TearDown() override { fs::remove_all(dir_); }
  testing::CliResult train(const std::string& method, const fs::path& out) {
    return run_hearth({"train", "--model", base_.string(), "--data", text_.string(), "--method", method, "--rank", "4", "--steps",
                       "8", "--warmup", "0", "--lr", "3e-3", "--seq-len", "64", "--batch", "2", "--eval-every", "0", "--threads",
                       "1", "--out", out.string()});
  }
  fs::path dir_, base_, text_;
};

TEST_F(CliGguf, MergedGgufComputesBasePlusAdapter) {
  ASSERT_EQ(train("lora", dir_ / "lora").exit_code, 0);
  const fs::path merged = dir_ / "merged.gguf";
  auto r = run_hearth({"adapters", "merge", "--model", base_.string(), "--adapter", (dir_ / "lora").string(), "--format", "gguf",
                       "--out", merged.string(), "--eval-data", text_.string(), "--ctx", "64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = last_json_line(r.out);
  EXPECT_LT(j.at("eval_ppl_adapted").get<double>(), j.at("eval_ppl_base").get<double>());
  // F32 GGUF of W + sBA: the perplexity of base + adapter up to float rounding.
  EXPECT_NEAR(j.at("eval_ppl_merged").get<double>() / j.at("eval_ppl_adapted").get<double>(), 1.0, 1e-5);
  auto info = run_hearth({"model", "info", "--model", merged.string(), "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(last_json_line(info.out).at("format"), "gguf");
}

TEST_F(CliGguf, DoraExportIsRefusedAndNothingIsWritten) {
  ASSERT_EQ(train("dora", dir_ / "dora").exit_code, 0);
  const fs::path out = dir_ / "dora.gguf";
  auto r = run_hearth({"adapters", "export", "--model", base_.string(), "--adapter", (dir_ / "dora").string(), "--format", "gguf", "--out", out.string()});
  expect_one_error(r, "DoRA");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliGguf, BadGgufInputIsOneErrorLine) {
  // A truncated model.
  const std::string bytes = testing::slurp(base_);
  const fs::path cut = dir_ / "cut.gguf";
  std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  expect_one_error(run_hearth({"generate", "--model", cut.string(), "--max-tokens", "4"}), "truncated");
  // A GGUF type Hearth does not write, and an unknown --to.
  const fs::path out = dir_ / "x.gguf";
  expect_one_error(run_hearth({"quantize", "--model", base_.string(), "--to", "gguf", "--format", "q3_k", "--out", out.string()}), "q3_k");
  expect_one_error(run_hearth({"quantize", "--model", base_.string(), "--to", "ggml", "--out", out.string()}), "--to");
  EXPECT_FALSE(fs::exists(out));
  // An unknown merge format.
  expect_one_error(run_hearth({"adapters", "merge", "--model", base_.string(), "--adapter", dir_.string(), "--format", "onnx", "--out",
                               out.string()}),
                   "--format");
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace hearth
