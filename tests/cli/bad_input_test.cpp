// Bad input through the real `hearth` command: each case gives one clear error line naming
// the problem and a non-zero exit code, never a crash.
#include <gtest/gtest.h>

#include <algorithm>

#include "bad_model_cases.h"
#include "cli_runner.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::run_hearth;

fs::path* g_dir = nullptr;

fs::path work_dir() {
  if (g_dir == nullptr) {
    g_dir = new fs::path(testing::fresh_temp_dir("cli_bad_input"));
    auto r = run_hearth({"model", "init", "--arch", "tiny", "--seed", "3", "--out", (*g_dir / "good").string()});
    if (r.exit_code != 0) ADD_FAILURE() << r.err;
  }
  return *g_dir;
}

void expect_one_error(const std::vector<std::string>& args, const std::string& needle) {
  auto r = run_hearth(args);
  EXPECT_EQ(r.signal, 0) << "crashed: " << r.err;
  EXPECT_NE(r.exit_code, 0);
  // Log lines ([info] ...) may precede it; the error itself is one line, the last one.
  EXPECT_EQ(testing::count_error_lines(r.err), 1) << r.err;
  const size_t last = r.err.rfind('\n', r.err.size() - 2);
  EXPECT_EQ(r.err.compare(last == std::string::npos ? 0 : last + 1, 7, "error: "), 0) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
}

class CliBadModel : public ::testing::TestWithParam<testing::BadModelCase> {};

TEST_P(CliBadModel, OneErrorLineAndNonZeroExit) {
  const auto& c = GetParam();
  fs::path model = c.make(work_dir() / "good", work_dir() / c.name);
  expect_one_error({"generate", "--model", model.string(), "--prompt", "hi", "--max-tokens", "2"}, c.needle);
}

INSTANTIATE_TEST_SUITE_P(Cases, CliBadModel, ::testing::ValuesIn(testing::bad_model_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CliBadInput, GoodModelGeneratesJson) {
  auto r = run_hearth({"generate", "--model", (work_dir() / "good").string(), "--prompt", "hello", "--max-tokens", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t start = r.out.rfind('\n', r.out.size() - 2);
  Json last = parse_json(r.out.substr(start == std::string::npos ? 0 : start + 1), "json line");
  EXPECT_EQ(last["tokens"].get<int>(), 3);
  EXPECT_TRUE(last.contains("tokens_per_s"));
}

TEST(CliBadInput, PromptWithInvalidUtf8) {
  expect_one_error({"generate", "--model", (work_dir() / "good").string(), "--prompt", "caf\xc3 \xff", "--max-tokens", "2"},
                   "UTF-8");
}

TEST(CliBadInput, MissingModel) {
  expect_one_error({"generate", "--model", (work_dir() / "nowhere").string(), "--max-tokens", "2"}, "not found");
}

TEST(CliBadInput, FederateRefusesBadSettingsBeforeAnyNetwork) {
  const std::string model = (work_dir() / "good").string();
  expect_one_error({"federate", "serve", "--model", model, "--cohort", "1"}, "--cohort >= 2");
  expect_one_error({"federate", "serve", "--model", model, "--noise", "1"}, "needs a clipping bound");
  expect_one_error({"federate", "serve", "--model", model, "--listen", "nowhere"}, "--listen must be ADDR:PORT");
  expect_one_error({"federate", "join", "--model", model, "--user", "u", "--coordinator", "127.0.0.1"},
                   "--coordinator must be ADDR:PORT");
}

TEST(CliBadInput, BadSamplingOption) {
  expect_one_error({"generate", "--model", (work_dir() / "good").string(), "--top-p", "0", "--max-tokens", "2"}, "top-p");
}

TEST(CliBadInput, UnknownArchitectureWritesNothing) {
  expect_one_error({"model", "init", "--arch", "gpt-9", "--out", (work_dir() / "x").string()}, "gpt-9");
  EXPECT_FALSE(fs::exists(work_dir() / "x"));
}

TEST(CliBadInput, PerplexityOnMissingData) {
  expect_one_error({"ppl", "--model", (work_dir() / "good").string(), "--data", (work_dir() / "none.txt").string()},
                   "not found");
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

std::string stories() { return testing::stories260k_dir().string(); }

// A text file of the first `bytes` of a novel.
fs::path novel_slice(const std::string& name, size_t bytes) {
  const fs::path p = work_dir() / name;
  std::string text = read_file(asset_path("data/jane_austen/persuasion.txt")).substr(0, bytes);
  write_file_atomic(p, text.substr(0, text.rfind('\n') + 1));
  return p;
}

// A small training run; an option in `extra` replaces the same option of the base run (an option
// given twice is itself an error).
std::vector<std::string> train(const fs::path& out, std::vector<std::string> extra) {
  const std::vector<std::pair<std::string, std::string>> base = {
      {"--model", stories()}, {"--data", novel_slice("train.txt", 6000).string()}, {"--out", out.string()},
      {"--steps", "4"}, {"--warmup", "1"}, {"--seq-len", "32"}, {"--batch", "2"}, {"--threads", "1"}};
  std::vector<std::string> a{"train"};
  for (const auto& [option, value] : base)
    if (std::find(extra.begin(), extra.end(), option) == extra.end()) a.insert(a.end(), {option, value});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Option-parser errors follow the same convention: one `error:` line, naming the option, exit 2.
TEST(CliParseErrors, OneErrorLineNamingTheOptionAndExitTwo) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"generate", "--model", stories(), "--max-tokens", "abc"}, "Could not convert: --max-tokens = abc"},
      {{"generate", "--model", stories(), "--bogus"}, "not expected: --bogus"},
      {{"generate", "--model", stories(), "stray"}, "not expected: stray"},
      {{"generate"}, "--model is required"},
      {{"train", "--model", stories(), "--steps", "99999999999999999999"}, "--steps: 99999999999999999999 does not fit"},
      {{"train", "--model", stories(), "--seed", "-1"}, "--seed: -1 is negative"},
      {{"--threads", "-1", "model", "info", "--model", stories()}, "--threads"},
      {{"--threads", "100000", "model", "info", "--model", stories()}, "100000"},
      {{}, "subcommand is required"},
  };
  for (const auto& [args, needle] : cases) {
    auto r = run_hearth(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;  // where to read about the options
  }
  auto help = run_hearth({"train", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--seq-len"), std::string::npos);
  EXPECT_EQ(testing::count_error_lines(help.err), 0) << help.err;
}

// Values of the right type but outside their ranges, through the real binary: refused before
// any work, and a refused run leaves no output folder.
TEST(CliOptionRanges, AbsurdValuesAreRefusedUpFrontAndLeaveNothing) {
  const fs::path out = work_dir() / "refused" / "nested" / "out";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--steps", "10000000000"}, "--steps must be an integer in 1..1000000, got 10000000000"},
      {{"--lr", "inf"}, "--lr must be a finite number in (0, 1], got inf"},
      {{"--lr", "nan"}, "got nan"},
      {{"--alpha", "1e38"}, "adapter alpha (--alpha) must be a finite number in (0, 10000], got 1e+38"},
      {{"--alpha", "1e300"}, "got 1e+300"},
      {{"--seq-len", "1000000000"}, "--seq-len must be an integer in 2..1048576, got 1000000000"},
      {{"--seq-len", "1024"}, "--seq-len 1024 is longer than the model's context of 512 positions"},
      {{"--resume"}, "no checkpoint to resume from"},
      {{"--weight-decay", "-1"}, "--weight-decay"},
      {{"--rank", "0"}, "adapter rank (--rank) must be an integer in 1..4096, got 0"},
  };
  for (const auto& [extra, needle] : cases) {
    expect_one_error(train(out, extra), needle);
    EXPECT_FALSE(fs::exists(work_dir() / "refused")) << "a refused run left " << out;
  }
  expect_one_error({"generate", "--model", stories(), "--temperature", "nan"}, "--temperature must be a finite number");
  expect_one_error({"generate", "--model", stories(), "--max-tokens", "-5"}, "--max-tokens must be an integer");
  expect_one_error({"model", "init", "--arch", "custom", "--tokenizer-from", stories(), "--layers", "1024", "--hidden",
                    "65536", "--heads", "512", "--kv-heads", "512", "--out", (work_dir() / "refused" / "huge").string()},
                   "parameters");
  EXPECT_FALSE(fs::exists(work_dir() / "refused"));
  expect_one_error({"quantize", "--model", stories(), "--format", "nf5", "--out", (work_dir() / "refused" / "q").string()},
                   "nf5");
  EXPECT_FALSE(fs::exists(work_dir() / "refused"));
}

TEST(CliOptionRanges, MoreThreadsThanCoresAreCappedWithAWarning) {
  auto r = run_hearth({"--threads", "1000", "generate", "--model", stories(), "--max-tokens", "2", "--temperature", "0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("--threads 1000 is more than the"), std::string::npos) << r.err;
}

TEST(CliTrain, ARunWithoutHeldOutRowsSaysSoInsteadOfPerplexityOne) {
  const fs::path out = work_dir() / "no_eval";
  auto r = run_hearth(train(out, {"--eval-fraction", "0", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("no held-out rows (perplexity not measured)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("1.000 -> 1.000"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("no held-out rows"), std::string::npos) << r.err;  // said before training, too
  const std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  const Json j = parse_json(last, "train --json");
  EXPECT_EQ(j["eval_rows"], 0);
  EXPECT_TRUE(j["eval_ppl_after"].is_null()) << last;
}

}  // namespace
}  // namespace hearth
