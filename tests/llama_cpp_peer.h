// llama.cpp as a test reference (scripts/peer/llama_cpp.sh npm installs it): runs
// scripts/peer/llama_logits.mjs on a GGUF model and compares its logits with Hearth's.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/json.h"
#include "test_helpers.h"

namespace hearth::testing {

// The checkout: HEARTH_SOURCE_DIR (set by ctest), else the folder above the build folder.
inline std::filesystem::path source_dir() {
  if (const char* dir = std::getenv("HEARTH_SOURCE_DIR")) return dir;
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path().parent_path();
}
inline std::filesystem::path peer_dir() { return source_dir() / "scripts" / "peer"; }

// Runs a shell command, returning its stdout and stderr; fails the test on a non-zero exit.
inline std::string run_command(const std::string& cmd) {
  const auto out = std::filesystem::temp_directory_path() / ("hearth_peer_" + std::to_string(::getpid()) + ".out");
  const int status = std::system((cmd + " >" + shell_quote(out.string()) + " 2>&1").c_str());
  const std::string text = slurp(out);
  EXPECT_EQ(status, 0) << cmd << "\n" << text.substr(0, 4000);
  return text;
}

inline Json last_peer_json(const std::string& out) {
  const size_t start = out.rfind("\n{");
  return parse_json(out.substr(start == std::string::npos ? 0 : start + 1), "peer output");
}

inline bool peer_installed() { return std::filesystem::exists(peer_dir() / "node_modules" / "node-llama-cpp" / "package.json"); }

// llama.cpp's logits for `tokens` (every position) and its greedy continuation of `steps`.
inline Json llama_cpp(const std::filesystem::path& model, const std::vector<int32_t>& tokens, int steps,
                      const std::filesystem::path& lora = {}) {
  std::string ids;
  for (int32_t t : tokens) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  std::string cmd = "node " + shell_quote((peer_dir() / "llama_logits.mjs").string()) + " --model " + shell_quote(model.string()) +
                    " --tokens " + ids + " --all-positions --greedy " + std::to_string(steps);
  if (!lora.empty()) cmd += " --lora " + shell_quote(lora.string());
  return last_peer_json(run_command(cmd));
}

// Rows of logits llama.cpp printed (prompt_logits or greedy_logits) as a [rows, vocab] tensor.
inline at::Tensor peer_logits(const Json& rows) {
  std::vector<at::Tensor> out;
  for (const Json& row : rows) out.push_back(at::tensor(row.get<std::vector<float>>()));
  return at::stack(out);
}

// max |hearth - llama.cpp| over all positions, relative to the largest |logit|.
inline double relative_logit_gap(const at::Tensor& hearth, const Json& peer) {
  const at::Tensor theirs = peer_logits(peer.at("prompt_logits"));
  EXPECT_EQ(theirs.sizes(), hearth.sizes());
  if (theirs.sizes() != hearth.sizes()) return INFINITY;
  return ((hearth - theirs).abs().max() / hearth.abs().max()).item<double>();
}

}  // namespace hearth::testing
