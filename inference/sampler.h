// Picks the next token from logits: greedy at temperature 0, otherwise temperature, top-k,
// top-p and a repeat penalty, from a seeded generator so runs can be replayed.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <vector>

namespace hearth {

struct SamplingOptions {
  float temperature = 0.8f;    // 0 = greedy
  int top_k = 40;              // 0 = no limit
  float top_p = 0.95f;         // 1 = no limit
  float repeat_penalty = 1.0f; // 1 = off; >1 discourages tokens seen in the last `repeat_window`
  int repeat_window = 64;
  uint64_t seed = 0;

  // Fails with kInvalidArgument naming the bad option.
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // logits: fp32 [vocab]. history: tokens so far (prompt and generated).
  int32_t sample(const at::Tensor& logits, const std::vector<int32_t>& history);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace hearth
