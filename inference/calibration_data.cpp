#include "inference/calibration_data.h"

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"
#include "inference/perplexity.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

// Limits that keep a typo from asking for days of work or all the memory.
constexpr int64_t kMaxCalibrationTokens = int64_t(1) << 24;
constexpr size_t kMaxFileBytes = size_t(1) << 30;

std::vector<fs::path> expand(const std::vector<fs::path>& paths) {
  std::vector<fs::path> files;
  for (const fs::path& p : paths) {
    require(fs::exists(p), ErrorCode::kNotFound, "calibration file not found: " + p.string());
    if (!fs::is_directory(p)) {
      files.push_back(p);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& entry : fs::recursive_directory_iterator(p)) {
      if (entry.is_regular_file()) found.push_back(entry.path());
    }
    std::sort(found.begin(), found.end());
    require(!found.empty(), ErrorCode::kInvalidArgument, "calibration folder " + p.string() + " holds no files");
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace

CalibrationText read_calibration_text(const Tokenizer& tokenizer, const std::vector<fs::path>& paths, int64_t max_tokens,
                                      int64_t length) {
  require(!paths.empty(), ErrorCode::kInvalidArgument, "no calibration files given");
  require(max_tokens > 0 && max_tokens <= kMaxCalibrationTokens, ErrorCode::kInvalidArgument,
          "--calib-tokens must be between 1 and " + std::to_string(kMaxCalibrationTokens));
  require(length > 0 && length <= max_tokens, ErrorCode::kInvalidArgument,
          "--calib-tokens (" + std::to_string(max_tokens) + ") must be at least one window of " + std::to_string(length) + " tokens");
  CalibrationText text;
  std::vector<int32_t> stream;
  for (const fs::path& file : expand(paths)) {
    if (static_cast<int64_t>(stream.size()) >= max_tokens) break;
    const std::vector<int32_t> ids = perplexity_token_stream(tokenizer, read_file(file, kMaxFileBytes));
    stream.insert(stream.end(), ids.begin(), ids.end());
    text.files.push_back(file.filename().string());
  }
  const int64_t windows = std::min<int64_t>(stream.size(), max_tokens) / length;
  require(windows > 0, ErrorCode::kInvalidArgument,
          "the calibration text has " + std::to_string(stream.size()) + " tokens, fewer than one window of " +
              std::to_string(length) + "; give more text");
  text.windows = at::empty({windows, length}, at::kLong);
  std::copy(stream.begin(), stream.begin() + windows * length, text.windows.data_ptr<int64_t>());
  return text;
}

}  // namespace hearth
