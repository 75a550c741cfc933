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

// A server's prompt step: several requests' prompts, each with its own adapter routed over its
// rows, share the plan's passes over the weights. With more rows than one pass takes (the third
// prompt straddles two passes), each prompt still gets bitwise the KV cache and last logits it
// gets alone, and what the single-prompt prefill (the generator's) gives it.
TEST(RoutedDecodePlan, PromptsOfABatchGetExactlyWhatTheyGetAlone) {
  RoutedPlan t;
  ASSERT_NE(t.plan, nullptr);
  if (!uses_int8_activations(active_kernels(), QuantFormat::kNF4)) GTEST_SKIP() << "portable kernels: prompts stay with the decoder";
  auto a = t.router.prepare(lora(*t.base.decoder, 4, "all", 7));
  auto b = t.router.prepare(lora(*t.base.decoder, 8, "q,v,down", 8));
  const std::vector<int64_t> lengths = {30, 25, 40};
  ASSERT_LT(DecodePlan::kPromptChunkRows, 95) << "the prompts must take more than one pass";
  ASSERT_GT(DecodePlan::kPromptChunkRows, 55) << "the third prompt must straddle two passes";
  at::InferenceMode guard;
  const ModelConfig& c = t.decoder->config();
  auto prompt = [&](int64_t i) {
    const at::Tensor ids = at::randint(1, c.vocab_size, {lengths[i]}, make_generator(uint64_t(40 + i)), at::kLong);
    return std::vector<int32_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + lengths[i]);
  };
  struct Run {
    std::unique_ptr<KVCache> cache;
    at::Tensor logits;
  };
  // Prompts `which` in one prefill, prompt which[k] with adapter who[k].
  auto run = [&](const std::vector<int64_t>& which, const std::vector<std::shared_ptr<const RoutableAdapter>>& who) {
    std::vector<Run> runs;
    std::vector<DecodePlan::Prompt> prompts;
    std::vector<RowGroup> groups;
    int64_t row = 0;
    for (size_t k = 0; k < which.size(); ++k) {
      const int64_t i = which[k];
      runs.push_back({std::make_unique<KVCache>(c, 1, lengths[i] + 1), at::empty({c.vocab_size}, at::kFloat)});
      prompts.push_back({prompt(i), runs.back().cache.get(), runs.back().logits.data_ptr<float>()});
      groups.push_back({row, lengths[i], who[k], 1.0});
      row += lengths[i];
    }
    t.router.route(groups);
    EXPECT_TRUE(t.plan->can_prefill(prompts));
    t.plan->prefill(prompts);
    t.router.clear();
    return runs;
  };
  auto same_cache = [&](KVCache& x, KVCache& y, int64_t length) {
    for (int64_t l = 0; l < c.num_layers; ++l)
      if (!at::equal(x.layer_keys(l).narrow(2, 0, length), y.layer_keys(l).narrow(2, 0, length)) ||
          !at::equal(x.layer_values(l).narrow(2, 0, length), y.layer_values(l).narrow(2, 0, length)))
        return false;
    return true;
  };
  const std::vector<std::shared_ptr<const RoutableAdapter>> who = {a, nullptr, b};
  const std::vector<Run> together = run({0, 1, 2}, who);
  for (int64_t i = 0; i < 3; ++i) {
    const std::vector<Run> alone = run({i}, {who[i]});
    EXPECT_TRUE(at::equal(together[i].logits, alone[0].logits)) << "prompt " << i << ": max difference "
                                                                << (together[i].logits - alone[0].logits).abs().max().item<float>();
    EXPECT_EQ(together[i].cache->length(), lengths[i]);
    EXPECT_TRUE(same_cache(*together[i].cache, *alone[0].cache, lengths[i])) << "prompt " << i;
  }
  KVCache single(c, 1, lengths[2] + 1);
  at::Tensor single_logits = at::empty({c.vocab_size}, at::kFloat);
  t.router.route({{0, 1, b, 1.0}});
  t.plan->prefill(prompt(2), single, single_logits.data_ptr<float>());
  t.router.clear();
  EXPECT_TRUE(at::equal(together[2].logits, single_logits));
  EXPECT_TRUE(same_cache(*together[2].cache, single, lengths[2]));
  // The adapters are applied: the same prompts without them end elsewhere.
  const std::vector<Run> bare = run({0, 1, 2}, {nullptr, nullptr, nullptr});
  EXPECT_GT(testing::relative_error(together[0].logits, bare[0].logits), 1e-2) << "adapter a changed nothing";
  EXPECT_GT(testing::relative_error(together[2].logits, bare[2].logits), 1e-2) << "adapter b changed nothing";
  EXPECT_TRUE(at::equal(together[1].logits, bare[1].logits)) << "the bare prompt must not see its neighbours' adapters";
}

// Two prompts on one cache would write the same positions: refused, as is an empty prompt.
TEST(RoutedDecodePlan, PrefillRefusesAPromptTwiceOnOneCacheOrAnEmptyOne) {
  RoutedPlan t;
  ASSERT_NE(t.plan, nullptr);
  if (!uses_int8_activations(active_kernels(), QuantFormat::kNF4)) GTEST_SKIP() << "portable kernels: prompts stay with the decoder";
  KVCache one(t.decoder->config(), 1, 8), other(t.decoder->config(), 1, 8);
  float logits = 0;  // never written: nothing runs
  EXPECT_TRUE(t.plan->can_prefill({{{1, 2}, &one, &logits}, {{3}, &other, &logits}}));
  EXPECT_FALSE(t.plan->can_prefill({{{1, 2}, &one, &logits}, {{3}, &one, &logits}}));
  EXPECT_FALSE(t.plan->can_prefill({{{1, 2}, &one, &logits}, {{}, &other, &logits}}));
  EXPECT_FALSE(t.plan->can_prefill({{{1, 2, 3, 4, 5, 6, 7, 8, 9}, &one, &logits}})) << "no room for nine positions";
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
