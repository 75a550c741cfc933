// The prepared decode step against the decoder's layer-by-layer forward (an independent
// composition of the same kernels) on the real stories260K and on a small Qwen2-style model with
// biases, and the persistent worker pool that runs it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/worker_pool.h"
#include "inference/decode_plan.h"
#include "inference/linear_quantized.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/quant/quant.h"
#include "test_helpers.h"

namespace hearth {
namespace {

TEST(WorkerPool, RunsEveryTaskExactlyOnceAcrossManyPhases) {
  for (int threads : {1, 2, 4}) {
    WorkerPool pool(threads);
    for (int64_t tasks : {1, 2, 3, 17, 300}) {
      std::vector<std::atomic<int>> runs(tasks);
      for (int phase = 0; phase < 200; ++phase) pool.for_each(tasks, [&](int64_t i) { runs[i].fetch_add(1); });
      for (int64_t i = 0; i < tasks; ++i) ASSERT_EQ(runs[i].load(), 200) << threads << " threads, task " << i;
    }
  }
}

TEST(WorkerPool, PhasesOfTwoCallingThreadsTakeTurns) {
  // Two generations on two app threads share the process's pool.
  WorkerPool pool(2);
  std::vector<std::atomic<int>> runs_a(50), runs_b(70);
  auto caller = [&](std::vector<std::atomic<int>>& runs) {
    for (int phase = 0; phase < 300; ++phase)
      pool.for_each(int64_t(runs.size()), [&](int64_t i) { runs[i].fetch_add(1); });
  };
  std::thread a(caller, std::ref(runs_a)), b(caller, std::ref(runs_b));
  a.join();
  b.join();
  for (auto& r : runs_a) ASSERT_EQ(r.load(), 300);
  for (auto& r : runs_b) ASSERT_EQ(r.load(), 300);
}

TEST(WorkerPool, WakesSleepingWorkersAndSpreadsTheWork) {
  WorkerPool pool(2);
  for (int round = 0; round < 3; ++round) {
    // Longer than the workers' spin, so each round starts with them asleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> on_caller{0}, total{0};
    const auto caller = std::this_thread::get_id();
    // Tasks that each take a while, so a woken worker has time to claim some.
    pool.for_each(64, [&](int64_t) {
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      total.fetch_add(1);
      if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
    });
    EXPECT_EQ(total.load(), 64);
    EXPECT_LT(on_caller.load(), 64) << "the worker never woke up in round " << round;
  }
}

TEST(WorkerPool, RefusesAnAbsurdThreadCount) {
  EXPECT_THROW(WorkerPool(0), Error);
  EXPECT_THROW(WorkerPool(100000), Error);
}

// Logits of `steps` decode steps after `prompt`, through the plan (plan = true) or the
// decoder's forward, each from its own cache.
std::vector<at::Tensor> decode_logits(const Decoder& d, const std::vector<int64_t>& prompt, const std::vector<int32_t>& steps,
                                      bool plan, WorkerPool& pool) {
  at::InferenceMode guard;
  KVCache cache(d.config(), 1, int64_t(prompt.size() + steps.size()) + 1);
  d.hidden_states({at::tensor(prompt, at::kLong).unsqueeze(0), {}, {}, &cache});
  std::unique_ptr<DecodePlan> p = plan ? DecodePlan::prepare(d, pool) : nullptr;
  if (plan) EXPECT_NE(p, nullptr);
  std::vector<at::Tensor> out;
  for (int32_t token : steps) {
    if (plan) {
      at::Tensor logits = at::empty({d.config().vocab_size}, at::kFloat);
      EXPECT_TRUE(p->can_step(cache));
      p->step(token, cache, logits.data_ptr<float>());
      out.push_back(logits);
    } else {
      at::Tensor h = d.hidden_states({at::full({1, 1}, int64_t(token), at::kLong), {}, {}, &cache});
      out.push_back(d.logits(h).view({-1}));
    }
  }
  return out;
}

// Both paths run the same per-row kernels; they differ in rotary angles (std::cos vs ATen's
// vectorized cos, ~1 ulp) and in the order of some float adds. Through a few layers that stays
// within ~1e-5 of the logits' scale; 1e-3 relative leaves room for the int8 activation rounding
// to flip on a value that lands on a rounding boundary, yet catches any wrong head, position or
// missing term (those move logits by O(1)).
void expect_paths_agree(const Decoder& d, const std::string& what) {
  const std::vector<int64_t> prompt = {1, 45, 201, 7, 99, 12};
  const std::vector<int32_t> steps = {33, 400, 5, 18, 250, 61, 2, 77};
  for (int threads : {1, 2, 3}) {
    WorkerPool pool(threads);
    const auto reference = decode_logits(d, prompt, steps, false, pool);
    const auto planned = decode_logits(d, prompt, steps, true, pool);
    for (size_t i = 0; i < steps.size(); ++i) {
      const double scale = reference[i].abs().max().item<double>();
      const double diff = (planned[i].to(at::kDouble) - reference[i].to(at::kDouble)).abs().max().item<double>();
      EXPECT_LT(diff, 1e-3 * scale) << what << ", " << threads << " threads, step " << i;
    }
  }
}

TEST(DecodePlan, MatchesTheDecoderOnStories260KInEveryFormat) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt4, QuantFormat::kInt8}) {
    LoadOptions o;
    o.quant = format;
    LoadedModel m = load_model(testing::stories260k_dir(), o);
    expect_paths_agree(*m.decoder, quant_format_name(format));
  }
}

// A Qwen2-shaped model: q/k/v biases, grouped heads, widths that are not whole nf4 blocks, and an
// untied quantized head.
std::unique_ptr<Decoder> small_qwen2(QuantFormat format) {
  ModelConfig c;
  c.architecture = Architecture::kQwen2, c.attention_bias = true;
  c.hidden_size = 96, c.intermediate_size = 200, c.num_layers = 2, c.num_heads = 6, c.num_kv_heads = 2, c.head_dim = 16;
  c.vocab_size = 512, c.max_position_embeddings = 64, c.rope_theta = 1e6, c.rms_norm_eps = 1e-6;
  c.validate("test model");
  at::manual_seed(7);
  auto q = [&](int64_t out, int64_t in) { return quantize_for_load(at::randn({out, in}) * 0.1, format); };
  std::vector<DecoderLayer> layers(2);
  for (DecoderLayer& l : layers) {
    l.attn_norm = at::rand({96}) + 0.5;
    l.mlp_norm = at::rand({96}) + 0.5;
    l.q = Linear::quantized(q(96, 96), at::randn({96}) * 0.1);
    l.k = Linear::quantized(q(32, 96), at::randn({32}) * 0.1);
    l.v = Linear::quantized(q(32, 96), at::randn({32}) * 0.1);
    l.o = Linear::quantized(q(96, 96));
    l.gate = Linear::quantized(q(200, 96));
    l.up = Linear::quantized(q(200, 96));
    l.down = Linear::quantized(q(96, 200));
  }
  return std::make_unique<Decoder>(c, Embedding::dense(at::randn({512, 96})), std::move(layers), at::rand({96}) + 0.5,
                                   Linear::quantized(q(512, 96)));
}

TEST(DecodePlan, MatchesTheDecoderWithBiasesAndPaddedBlocks) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt4, QuantFormat::kInt8})
    expect_paths_agree(*small_qwen2(format), std::string("qwen2-shaped ") + quant_format_name(format));
}

// Phi-3: the split parts of the fused projections, 12 of 16 dimensions rotating, longrope's
// short factors and attention factor in the step's angles.
TEST(DecodePlan, MatchesTheDecoderOnPhi3sPartialRotaryAndLongrope) {
  const auto dir = testing::fresh_temp_dir("plan_phi3");
  init_random_model("tiny-phi3", 9, dir / "model");
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt8}) {
    LoadOptions o;
    o.quant = format;
    LoadedModel m = load_model(dir / "model", o);
    expect_paths_agree(*m.decoder, std::string("tiny-phi3 ") + quant_format_name(format));
  }
  std::filesystem::remove_all(dir);
}

TEST(DecodePlan, StepsAsideForAdaptersAndAFullCache) {
  std::unique_ptr<Decoder> d = small_qwen2(QuantFormat::kNF4);
  std::unique_ptr<DecodePlan> plan = DecodePlan::prepare(*d);
  ASSERT_NE(plan, nullptr);
  KVCache cache(d->config(), 1, 2);
  EXPECT_TRUE(plan->can_step(cache));
  struct Identity : LinearAdapter {
    at::Tensor apply(const at::Tensor&, const at::Tensor& base, const Linear&) const override { return base; }
  };
  d->layers()[1].down.set_adapter(std::make_shared<Identity>());
  EXPECT_FALSE(plan->can_step(cache)) << "an adapter's low-rank path is not in the plan";
  d->layers()[1].down.set_adapter(nullptr);
  cache.advance(2);
  EXPECT_FALSE(plan->can_step(cache)) << "no room for another position";
  KVCache batched(d->config(), 2, 4);
  EXPECT_FALSE(plan->can_step(batched));
}

TEST(DecodePlan, IsNotPreparedForDenseWeights) {
  LoadedModel m = load_model(testing::stories260k_dir(), LoadOptions{});
  EXPECT_EQ(DecodePlan::prepare(*m.decoder), nullptr);
}

}  // namespace
}  // namespace hearth
