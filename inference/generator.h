// Generation: prefill the prompt into a KV cache, then decode token by token, streaming
// complete UTF-8 text to a callback and stopping at a stop token or the token limit.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "inference/decoder.h"
#include "inference/sampler.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

struct GenerationOptions {
  int max_tokens = 128;
  SamplingOptions sampling;
  bool stop_at_stop_tokens = true;
  // Set by another thread to stop between tokens (stop_reason "cancelled"); may be null.
  const std::atomic<bool>* cancel = nullptr;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated tokens only (stop token excluded)
  std::string text;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  std::string stop_reason;  // "stop_token" | "max_tokens" | "context_full" | "cancelled"

  double decode_tokens_per_second() const;
  double prefill_tokens_per_second() const;
};

using TextCallback = std::function<void(std::string_view)>;

GenerationResult generate(const Decoder& decoder, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                          const GenerationOptions& options, const TextCallback& on_text = nullptr);

// Splits a byte stream into the longest prefix that ends on a whole UTF-8 character.
size_t complete_utf8_prefix(std::string_view bytes);

}  // namespace hearth
