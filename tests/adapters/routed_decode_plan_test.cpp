// The server's batched decode: one prepared step over several sequences, each with its own KV
// cache and its own adapter routed by row (adapters/adapter_routing.h). A sequence must get
// bitwise what it gets alone, and its adapter must really be applied.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"
#include "adapters/adapter_routing.h"
#include "inference/decode_plan.h"
#include "inference/quant/quant_kernels.h"
#include "inference/quant/quant_matmul.h"

namespace hearth {
namespace {

std::shared_ptr<Adapter> lora(const Decoder& d, int64_t rank, const std::string& targets, uint64_t seed,
                              AdapterMethod method = AdapterMethod::kLoRA) {
  AdapterConfig c;
  c.method = method;
  c.rank = rank;
  c.alpha = 2.0 * rank;
  c.seed = seed;
  c.targets = AdapterConfig::parse_targets(targets);
  auto a = Adapter::create(d, c);
  testing::randomize_adapter(*a, seed + 100, 0.2);
  testing::round_factors_to_fp16(*a);
  return a;
}

struct RoutedPlan {
  LoadedModel base = testing::load_tiny(/*nf4=*/true);
  std::shared_ptr<Decoder> decoder = std::make_shared<Decoder>(*base.decoder);
  AdapterRouter router{decoder};
  std::unique_ptr<DecodePlan> plan = DecodePlan::prepare(*decoder);
  const std::vector<int64_t> prompt = {1, 20, 31, 4, 95, 6};
  const std::vector<int32_t> tokens = {33, 7, 50, 18, 2, 61};

  // A cache holding the prompt, computed with `adapter` routed (the server's prompt step).
  std::unique_ptr<KVCache> prefilled(const std::shared_ptr<const RoutableAdapter>& adapter) {
    at::InferenceMode guard;
    auto cache = std::make_unique<KVCache>(decoder->config(), 1, int64_t(prompt.size() + tokens.size()) + 1);
    router.route({{0, int64_t(prompt.size()), adapter, 1.0}});
    decoder->hidden_states({at::tensor(prompt, at::kLong).unsqueeze(0), {}, {}, cache.get()});
    router.clear();
    return cache;
  }

  // Logits of each decode step for the sequences `who` (their adapters), all in one batch.
  std::vector<std::vector<at::Tensor>> decode(const std::vector<std::shared_ptr<const RoutableAdapter>>& who) {
    at::InferenceMode guard;
    const int64_t seqs = int64_t(who.size());
    std::vector<std::unique_ptr<KVCache>> owned;
    std::vector<KVCache*> caches;
    std::vector<RowGroup> groups;
    for (int64_t s = 0; s < seqs; ++s) {
      owned.push_back(prefilled(who[s]));
      caches.push_back(owned.back().get());
      groups.push_back({s, 1, who[s], 1.0});
    }
    std::vector<std::vector<at::Tensor>> out(seqs);
    for (int32_t token : tokens) {
      std::vector<float*> rows;
      for (int64_t s = 0; s < seqs; ++s) {
        out[s].push_back(at::empty({decoder->config().vocab_size}));
        rows.push_back(out[s].back().data_ptr<float>());
      }
      router.route(groups);
      EXPECT_TRUE(plan->can_step(caches));
      plan->step(std::vector<int32_t>(seqs, token), caches, rows);
      router.clear();
    }
    return out;
  }
};

TEST(RoutedDecodePlan, EverySequenceOfABatchGetsExactlyWhatItGetsAlone) {
  RoutedPlan t;
  ASSERT_NE(t.plan, nullptr);
  auto a = t.router.prepare(lora(*t.base.decoder, 4, "all", 1));
  auto b = t.router.prepare(lora(*t.base.decoder, 8, "q,v,down", 2));
  // Two groups of four in the kernels, a bare row between adapted ones, one adapter twice.
  const std::vector<std::shared_ptr<const RoutableAdapter>> who = {a, nullptr, b, a, b, nullptr};
  const auto together = t.decode(who);
  for (size_t s = 0; s < who.size(); ++s) {
    const auto alone = t.decode({who[s]});
    for (size_t i = 0; i < t.tokens.size(); ++i)
      EXPECT_TRUE(at::equal(together[s][i], alone[0][i]))
          << "sequence " << s << ", step " << i << ": max difference "
          << (together[s][i] - alone[0][i]).abs().max().item<float>();
  }
  // The adapters are applied: the same prompt and tokens give other logits with each of them.
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    EXPECT_GT(testing::relative_error(together[0][i], together[1][i]), 1e-2) << "adapter a changed nothing at step " << i;
    EXPECT_GT(testing::relative_error(together[2][i], together[1][i]), 1e-2) << "adapter b changed nothing at step " << i;
  }
}

// The plan's low-rank path computes what the decoder's routed forward computes. Both round x to
// int8 in the base products and differ in summation order elsewhere: 1e-3 of the logits' scale
// (as in decode_plan_test.cpp) is orders of magnitude below an adapter's effect checked above.
TEST(RoutedDecodePlan, AgreesWithTheDecodersRoutedForward) {
  RoutedPlan t;
  ASSERT_NE(t.plan, nullptr);
  auto a = t.router.prepare(lora(*t.base.decoder, 4, "all", 3));
  const auto planned = t.decode({a});
  at::InferenceMode guard;
  auto cache = t.prefilled(a);
  for (size_t i = 0; i < t.tokens.size(); ++i) {
    t.router.route({{0, 1, a, 1.0}});
    at::Tensor h = t.decoder->hidden_states({at::full({1, 1}, int64_t(t.tokens[i]), at::kLong), {}, {}, cache.get()});
    at::Tensor reference = t.decoder->logits(h).view({-1});
    t.router.clear();
    const double scale = reference.abs().max().item<double>();
    EXPECT_LT((planned[0][i] - reference).abs().max().item<double>(), 1e-3 * scale) << "step " << i;
  }
}

// A prompt through the plan with its request's adapter routed: every token of the prompt takes
// that adapter (routing row 0), as in the decoder's routed prompt forward. Tolerance as above; the
// adapter's own effect on the last logits is checked to be far larger.
TEST(RoutedDecodePlan, PrefillAppliesTheRequestsAdapterToEveryPromptToken) {
  RoutedPlan t;
  ASSERT_NE(t.plan, nullptr);
  if (!uses_int8_activations(active_kernels(), QuantFormat::kNF4)) GTEST_SKIP() << "portable kernels: prompts stay with the decoder";
  auto a = t.router.prepare(lora(*t.base.decoder, 4, "all", 6));
  at::InferenceMode guard;
  const int64_t n = int64_t(t.prompt.size()), vocab = t.decoder->config().vocab_size;
  auto prompt_logits = [&](const std::shared_ptr<const RoutableAdapter>& adapter) {
    PromptRowsScope prompt_rows;  // x rounded to int8 in the base products, as in the plan
    KVCache cache(t.decoder->config(), 1, n + 1);
    t.router.route({{0, n, adapter, 1.0}});
    at::Tensor h = t.decoder->hidden_states({at::tensor(t.prompt, at::kLong).unsqueeze(0), {}, {}, &cache});
    t.router.clear();
    return t.decoder->logits(h.select(1, n - 1)).view({-1});
  };
  const at::Tensor reference = prompt_logits(a), without = prompt_logits(nullptr);
  KVCache cache(t.decoder->config(), 1, n + 1);
  at::Tensor planned = at::empty({vocab}, at::kFloat);
  t.router.route({{0, 1, a, 1.0}});
  ASSERT_TRUE(t.plan->can_prefill(cache, n));
  t.plan->prefill(std::vector<int32_t>(t.prompt.begin(), t.prompt.end()), cache, planned.data_ptr<float>());
  t.router.clear();
  const double scale = reference.abs().max().item<double>();
  EXPECT_LT((planned - reference).abs().max().item<double>(), 1e-3 * scale);
  EXPECT_GT((reference - without).abs().max().item<double>(), 1e-2 * scale) << "the adapter must matter here";
}

TEST(RoutedDecodePlan, StepsAsideWhenARowsAdapterIsDora) {
  RoutedPlan t;
  ASSERT_NE(t.plan, nullptr);
  auto a = t.router.prepare(lora(*t.base.decoder, 4, "all", 4));
  auto d = t.router.prepare(lora(*t.base.decoder, 4, "all", 5, AdapterMethod::kDoRA));
  KVCache first(t.decoder->config(), 1, 4), second(t.decoder->config(), 1, 4);
  t.router.route({{0, 1, a, 1.0}, {1, 1, nullptr, 1.0}});
  EXPECT_TRUE(t.plan->can_step({&first, &second}));
  t.router.route({{0, 1, a, 1.0}, {1, 1, d, 1.0}});
  EXPECT_FALSE(t.plan->can_step({&first, &second})) << "DoRA is not a plain low-rank update";
  t.router.clear();
}

// What a server's memory budget counts for an adapter: its fp32 parameters, and for LoRA the fp16
// copies of A and B the decode step keeps (half as many bytes again); DoRA keeps none.
TEST(RoutableAdapter, BytesCountTheDecodeStepsCopies) {
  RoutedPlan t;
  auto parameter_bytes = [](const Adapter& a) {
    size_t n = 0;
    for (const at::Tensor& p : a.parameters()) n += p.nbytes();
    return n;
  };
  auto l = lora(*t.base.decoder, 4, "all", 4);
  auto d = lora(*t.base.decoder, 4, "all", 5, AdapterMethod::kDoRA);
  EXPECT_EQ(t.router.prepare(l)->bytes, parameter_bytes(*l) * 3 / 2);
  EXPECT_EQ(t.router.prepare(d)->bytes, parameter_bytes(*d));
}

}  // namespace
}  // namespace hearth
