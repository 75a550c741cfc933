// Shared pieces of the adapter tests: a tiny seeded model (written once per process), random
// inputs, and adapters whose B (and DoRA magnitude) are made non-zero so they change outputs.
#pragma once
#include <gtest/gtest.h>

#include "adapters/adapter.h"
#include "core/rng.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "test_helpers.h"

namespace hearth::testing {

// The "tiny" preset (2 layers, hidden 64) written once; loaded fp32 or with nf4 projections.
inline const std::filesystem::path& tiny_model_dir() {
  static const std::filesystem::path dir = [] {
    auto d = fresh_temp_dir("adapters_tiny") / "model";
    init_random_model("tiny", 11, d);
    return d;
  }();
  return dir;
}

inline LoadedModel load_tiny(bool nf4) {
  LoadOptions o;
  if (nf4) o.quant = QuantFormat::kNF4;
  return load_model(tiny_model_dir(), o);
}

inline ForwardInput tokens_input(int64_t batch, int64_t length, int64_t vocab, uint64_t seed) {
  at::Generator gen = make_generator(seed);
  ForwardInput in;
  in.tokens = at::randint(1, vocab, {batch, length}, gen, at::kLong);
  return in;
}

// Makes an adapter do something: B ~ N(0, std), magnitudes scaled by U(0.9, 1.1).
inline void randomize_adapter(const Adapter& adapter, uint64_t seed, double std = 0.05) {
  at::NoGradGuard no_grad;
  at::Generator gen = make_generator(seed);
  for (auto& [name, t] : adapter.named_parameters()) {
    if (name.find("lora_B") != std::string::npos) t.normal_(0, std, gen);
    if (name.find("magnitude") != std::string::npos) t.mul_(at::empty_like(t).uniform_(0.9, 1.1, gen));
  }
}

// Rounds the LoRA factors to fp16 values, so the fp16 copies the decode step reads are exact
// (LoraLayer::low_rank_update) and the plan differs from the decoder only in summation order.
// Without it, rounding shifts the int8 activations of later layers by a quantum here and there.
inline void round_factors_to_fp16(const Adapter& adapter) {
  at::NoGradGuard no_grad;
  for (auto& [name, t] : adapter.named_parameters())
    if (name.find("lora_") != std::string::npos) t.copy_(t.to(at::kHalf).to(at::kFloat));
}

// ||a - b|| / ||b|| in double.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  return (a64 - b64).norm().item<double>() / std::max(b64.norm().item<double>(), 1e-300);
}

}  // namespace hearth::testing
