// Bad input through the real `hearth` command: each case gives one clear error line naming
// the problem and a non-zero exit code, never a crash.
#include <gtest/gtest.h>

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
