#include "inference/generator.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/error.h"
#include "core/range_check.h"
#include "inference/decode_plan.h"
#include "inference/quant/quant_matmul.h"

namespace hearth {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The next position's logits after `token`: through the prepared plan when it can run this
// step (written into plan_logits), else the decoder's own forward.
at::Tensor decode_step(const Decoder& decoder, DecodePlan* plan, int32_t token, KVCache& cache,
                       const at::Tensor& plan_logits) {
  if (plan != nullptr && plan->can_step(cache)) {
    plan->step(token, cache, plan_logits.data_ptr<float>());
    return plan_logits;
  }
  const at::Tensor step = at::full({1, 1}, int64_t(token), at::kLong);
  return decoder.logits(decoder.hidden_states({step, {}, {}, &cache}).select(1, 0)).squeeze(0);
}

// The last prompt token's next-token logits, the prompt's keys and values in the cache: through
// the plan when it can run the prompt (written into plan_logits), else the decoder's forward.
at::Tensor prefill(const Decoder& decoder, DecodePlan* plan, const std::vector<int32_t>& prompt, KVCache& cache,
                   const at::Tensor& plan_logits) {
  if (plan != nullptr && plan->can_prefill(cache, static_cast<int64_t>(prompt.size()))) {
    plan->prefill(prompt, cache, plan_logits.data_ptr<float>());
    return plan_logits;
  }
  const at::Tensor input = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong).unsqueeze(0);
  PromptRowsScope prompt_rows;  // the prompt's rows through the int8 kernels, as its decode steps
  const at::Tensor hidden = decoder.hidden_states({input, {}, {}, &cache});
  return decoder.logits(hidden.select(1, hidden.size(1) - 1)).squeeze(0);
}

}  // namespace

double GenerationResult::decode_tokens_per_second() const {
  // The first generated token comes from the prefill; the rest from decode steps.
  const double steps = tokens.size() > 1 ? double(tokens.size() - 1) : 0.0;
  return decode_seconds > 0 ? steps / decode_seconds : 0.0;
}

double GenerationResult::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? double(prompt_tokens) / prefill_seconds : 0.0;
}

size_t complete_utf8_prefix(std::string_view bytes) {
  // Walk back over at most 3 continuation bytes to the last lead byte; keep it only if
  // its whole sequence is present.
  size_t n = bytes.size();
  size_t i = n;
  int back = 0;
  while (i > 0 && back < 4 && (static_cast<uint8_t>(bytes[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++back;
  }
  if (i == 0) return back == 0 ? 0 : n;  // only continuation bytes: let them through
  const uint8_t lead = static_cast<uint8_t>(bytes[i - 1]);
  size_t need = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
  return (n - (i - 1)) >= need ? n : i - 1;
}

GenerationResult generate(const Decoder& decoder, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                          const GenerationOptions& options, const TextCallback& on_text) {
  require(!prompt.empty(), ErrorCode::kInvalidArgument, "the prompt is empty (no tokens, not even BOS)");
  require_integer_in_range("--max-tokens", options.max_tokens, 0, std::numeric_limits<int>::max());
  at::InferenceMode inference;
  const auto& config = decoder.config();
  const int64_t capacity = std::min<int64_t>(config.context_length(), int64_t(prompt.size()) + options.max_tokens);
  require(int64_t(prompt.size()) < config.context_length(), ErrorCode::kInvalidArgument,
          "the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context is " +
              std::to_string(config.context_length()));
  KVCache cache(config, 1, std::max<int64_t>(capacity, int64_t(prompt.size()) + 1));
  Sampler sampler(options.sampling);
  std::vector<int32_t> stops = tokenizer.stop_ids();
  std::vector<int32_t> history = prompt;

  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.stop_reason = "max_tokens";
  std::string pending;  // bytes not yet emitted because they end mid-character
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<DecodePlan> plan = options.prepared_decode ? DecodePlan::prepare(decoder) : nullptr;
  const at::Tensor plan_logits = at::empty({config.vocab_size}, at::kFloat);
  at::Tensor logits = prefill(decoder, plan.get(), prompt, cache, plan_logits);
  result.prefill_seconds = seconds_since(t0);
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < options.max_tokens; ++i) {
    if (options.cancel != nullptr && options.cancel->load()) {
      result.stop_reason = "cancelled";
      break;
    }
    const int32_t next = sampler.sample(logits, history);
    if (options.stop_at_stop_tokens && std::find(stops.begin(), stops.end(), next) != stops.end()) {
      result.stop_reason = "stop_token";
      break;
    }
    result.tokens.push_back(next);
    history.push_back(next);
    pending += tokenizer.decode_next(history.size() >= 2 ? history[history.size() - 2] : -1, next);
    const size_t ready = complete_utf8_prefix(pending);
    if (ready > 0) {
      if (on_text) on_text(std::string_view(pending.data(), ready));
      result.text += pending.substr(0, ready);
      pending.erase(0, ready);
    }
    if (i + 1 == options.max_tokens) break;
    if (cache.length() >= cache.capacity()) {
      result.stop_reason = "context_full";
      break;
    }
    logits = decode_step(decoder, plan.get(), next, cache, plan_logits);
  }
  if (!pending.empty()) {
    if (on_text) on_text(pending);
    result.text += pending;
  }
  result.decode_seconds = seconds_since(t1);
  return result;
}

}  // namespace hearth
