#include "inference/perplexity.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace hearth {

std::vector<int32_t> perplexity_token_stream(const Tokenizer& tokenizer, const std::string& text) {
  std::vector<int32_t> stream;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    std::vector<int32_t> ids = tokenizer.encode(line, /*add_bos=*/true);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  return stream;
}

at::Tensor chunked_nll(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets) {
  // About 16 MB of fp32 logits per chunk whatever the vocabulary.
  const int64_t vocab = decoder.config().vocab_size;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(4) << 20) / vocab);
  at::Tensor total = at::zeros({}, at::kDouble);
  for (int64_t s = 0; s < hidden.size(0); s += chunk) {
    const int64_t n = std::min(chunk, hidden.size(0) - s);
    at::Tensor logp = at::log_softmax(decoder.logits(hidden.narrow(0, s, n)), -1);
    total = total - logp.gather(1, targets.narrow(0, s, n).unsqueeze(1)).sum().to(at::kDouble);
  }
  return total;
}

PerplexityResult evaluate_perplexity(const Decoder& decoder, const std::vector<int32_t>& stream, int64_t ctx) {
  require(ctx > 0, ErrorCode::kInvalidArgument, "--ctx must be positive");
  require(ctx <= decoder.config().context_length(), ErrorCode::kInvalidArgument,
          "--ctx " + std::to_string(ctx) + " exceeds the model's context of " + std::to_string(decoder.config().context_length()));
  const int64_t windows = int64_t(stream.size()) / (ctx + 1);
  require(windows > 0, ErrorCode::kInvalidArgument,
          "the text has " + std::to_string(stream.size()) + " tokens, fewer than one window of " + std::to_string(ctx + 1));
  at::InferenceMode inference;
  at::Tensor all = at::tensor(std::vector<int64_t>(stream.begin(), stream.begin() + windows * (ctx + 1)), at::kLong)
                       .view({windows, ctx + 1});
  double nll = 0;
  // Several windows per pass amortize per-op overhead on small models, while the attention
  // scores of a pass (batch x heads x ctx x ctx floats) stay small enough to remain in cache.
  const auto& c = decoder.config();
  const int64_t by_activations = (int64_t(1) << 22) / (ctx * c.hidden_size);
  const int64_t by_scores = (int64_t(1) << 20) / (c.num_heads * ctx * ctx);
  const int64_t batch = std::max<int64_t>(1, std::min<int64_t>({16, by_activations, by_scores}));
  for (int64_t w = 0; w < windows; w += batch) {
    const int64_t b = std::min(batch, windows - w);
    at::Tensor rows = all.narrow(0, w, b);
    at::Tensor hidden = decoder.hidden_states({rows.narrow(1, 0, ctx).contiguous(), {}, {}, nullptr});
    nll += chunked_nll(decoder, hidden.reshape({b * ctx, -1}), rows.narrow(1, 1, ctx).reshape({-1})).item<double>();
  }
  PerplexityResult r;
  r.windows = windows;
  r.tokens_scored = windows * ctx;
  r.mean_nll = nll / double(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace hearth
