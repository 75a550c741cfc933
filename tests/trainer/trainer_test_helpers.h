// Shared pieces of the trainer tests: the real stories260K model, slices of real texts, and
// small training configurations that run in a second or two.
#pragma once
#include <filesystem>
#include <string>

#include "core/atomic_file.h"
#include "inference/model_loader.h"
#include "inference/quant/quant_format.h"
#include "test_helpers.h"
#include "trainer/train_config.h"

namespace hearth::testing {

inline LoadedModel load_stories(bool nf4 = false) {
  LoadOptions o;
  if (nf4) o.quant = QuantFormat::kNF4;
  return load_model(stories260k_dir(), o);
}

// The first `bytes` of a shared text, cut at a line end.
inline std::string text_slice(const std::string& relative, size_t bytes) {
  std::string text = read_file(asset_path(relative));
  text.resize(std::min(bytes, text.size()));
  return text.substr(0, text.rfind('\n') + 1);
}

inline trainer::TrainConfig small_config(const std::filesystem::path& out) {
  trainer::TrainConfig c;
  c.steps = 6;
  c.seq_len = 32;
  c.batch = 2;
  c.grad_accum = 2;
  c.lr = 5e-3;
  c.warmup = 2;
  c.eval_every = 3;
  c.seed = 7;
  c.out = out;
  c.progress = false;
  c.optimizer.name = "adamw";
  return c;
}

}  // namespace hearth::testing
