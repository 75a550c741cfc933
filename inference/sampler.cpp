#include "inference/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "core/range_check.h"

namespace hearth {

void SamplingOptions::validate() const {
  require_number_in_range("--temperature", temperature, 0, 100);
  require_integer_in_range("--top-k", top_k, 0, int64_t(1) << 24);
  require_number_in_range("--top-p", top_p, 0, 1, Bound::kOpen);
  require_number_in_range("--repeat-penalty", repeat_penalty, 0, 100, Bound::kOpen);
  require_integer_in_range("the repeat window", repeat_window, 0, int64_t(1) << 20);
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) { options_.validate(); }

int32_t Sampler::sample(const at::Tensor& logits_in, const std::vector<int32_t>& history) {
  at::Tensor logits = logits_in.to(at::kFloat).contiguous();
  const int64_t vocab = logits.numel();
  std::vector<float> l(logits.data_ptr<float>(), logits.data_ptr<float>() + vocab);
  if (options_.repeat_penalty != 1.0f && options_.repeat_window > 0) {
    // As llama.cpp does: shrink positive logits, grow negative ones, once per distinct token.
    std::unordered_set<int32_t> seen;
    const size_t start = history.size() > size_t(options_.repeat_window) ? history.size() - options_.repeat_window : 0;
    for (size_t i = start; i < history.size(); ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= vocab || !seen.insert(t).second) continue;
      l[t] = l[t] > 0 ? l[t] / options_.repeat_penalty : l[t] * options_.repeat_penalty;
    }
  }
  if (options_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
  }
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = options_.top_k > 0 ? std::min<int64_t>(options_.top_k, vocab) : vocab;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  order.resize(k);
  std::vector<double> p(k);
  const double top = l[order[0]] / options_.temperature;
  double total = 0;
  for (int64_t i = 0; i < k; ++i) total += p[i] = std::exp(l[order[i]] / options_.temperature - top);
  // Keep the smallest prefix whose probability mass reaches top_p.
  int64_t keep = k;
  double mass = 0;
  for (int64_t i = 0; i < k; ++i) {
    mass += p[i] / total;
    if (mass >= options_.top_p) {
      keep = i + 1;
      break;
    }
  }
  std::discrete_distribution<int64_t> pick(p.begin(), p.begin() + keep);
  return order[pick(rng_)];
}

}  // namespace hearth
