// Calibration text for quantization: files read, tokenized by the perplexity protocol (each
// non-empty line with BOS, concatenated) and cut into windows the model runs over.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include "inference/tokenizer/tokenizer.h"

namespace hearth {

struct CalibrationText {
  at::Tensor windows;               // int64 [windows, length]
  std::vector<std::string> files;   // the file names read (no directories), in order
  int64_t tokens() const { return windows.numel(); }
};

// At most max_tokens tokens from `paths` (files, or folders searched recursively in sorted
// order), in windows of `length` tokens; a shorter text gives fewer windows. Missing paths are
// kNotFound; fewer than `length` tokens in all is kInvalidArgument saying how many there were.
CalibrationText read_calibration_text(const Tokenizer& tokenizer, const std::vector<std::filesystem::path>& paths,
                                      int64_t max_tokens, int64_t length);

}  // namespace hearth
