// Perplexity by the project's protocol: each non-empty line encoded on its own with BOS, the
// streams concatenated, and non-overlapping windows of ctx+1 tokens each scoring ctx predictions.
#pragma once
#include <string>
#include <vector>

#include "inference/decoder.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
};

// The token stream of `text` by the protocol above.
std::vector<int32_t> perplexity_token_stream(const Tokenizer& tokenizer, const std::string& text);

// Scores windows of ctx+1 tokens (a trailing partial window is dropped).
PerplexityResult evaluate_perplexity(const Decoder& decoder, const std::vector<int32_t>& stream, int64_t ctx);

// Sum of -log p(target) over positions, with logits computed in chunks of positions so the
// full [T, vocab] logits never exist at once for large vocabularies. hidden: [T, hidden].
at::Tensor chunked_nll(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets);

}  // namespace hearth
