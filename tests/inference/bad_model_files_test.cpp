// The bad-input suite at the library level: every corrupt model folder is refused with one
// Error naming the problem. CI also runs this under AddressSanitizer and UBSan.
#include <gtest/gtest.h>

#include "bad_model_cases.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"

namespace hearth {
namespace {

class BadModelFiles : public ::testing::TestWithParam<testing::BadModelCase> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(testing::fresh_temp_dir("bad_model_files"));
    init_random_model("tiny", 3, *dir_ / "good");
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::filesystem::path* dir_;
};
std::filesystem::path* BadModelFiles::dir_ = nullptr;

TEST_P(BadModelFiles, RefusedWithAClearError) {
  const auto& c = GetParam();
  const std::filesystem::path model = c.make(*dir_ / "good", *dir_ / c.name);
  try {
    load_model(model, LoadOptions{});
    FAIL() << c.name << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << c.name << ": " << e.what();
  }
}

TEST_F(BadModelFiles, GoodModelLoads) { EXPECT_NO_THROW(load_model(*dir_ / "good", LoadOptions{})); }

INSTANTIATE_TEST_SUITE_P(Cases, BadModelFiles, ::testing::ValuesIn(testing::bad_model_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace hearth
