// The prepared decode step against the decoder's layer-by-layer forward (an independent
// composition of the same kernels) on the real stories260K and on a small Qwen2-style model with
// biases.
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
#include "inference/quant/quant_kernels.h"
#include "inference/quant/quant_matmul.h"
#include "inference/quant/row_tiles.h"
#include "test_helpers.h"
#include "inference/quantized_model_files.h"
#include "inference/split_table.h"
#include "quant/quant_test_util.h"

namespace hearth {
namespace {

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

// Both paths run the same per-row kernels in the same order, and take the same rotary angles
// (Rope::angles and the step both compute them one element at a time): a step's logits are
// bitwise the decoder's, on every instruction set and thread count. That is what lets a server
// batch a request's steps either way and still answer as the request does alone.
void expect_paths_agree(const Decoder& d, const std::string& what) {
  const std::vector<int64_t> prompt = {1, 45, 201, 7, 99, 12};
  const std::vector<int32_t> steps = {33, 400, 5, 18, 250, 61, 2, 77};
  for (int threads : {1, 2, 3}) {
    WorkerPool pool(threads);
    const auto reference = decode_logits(d, prompt, steps, false, pool);
    const auto planned = decode_logits(d, prompt, steps, true, pool);
    for (size_t i = 0; i < steps.size(); ++i) {
      EXPECT_TRUE(at::equal(planned[i], reference[i]))
          << what << ", " << threads << " threads, step " << i << ": max difference "
          << (planned[i] - reference[i]).abs().max().item<float>();
    }
  }
}

// Logits of every position of `tokens` fed to one cache in parts of the given sizes, as
// generation runs them (inference mode, prompts through the int8 kernels): a part of one token
// is a decode step, a longer one a prompt.
at::Tensor logits_in_parts(const Decoder& d, const std::vector<int64_t>& tokens, const std::vector<size_t>& parts) {
  at::InferenceMode guard;
  PromptRowsScope prompt_rows;
  KVCache cache(d.config(), 1, int64_t(tokens.size()) + 1);
  std::vector<at::Tensor> rows;
  size_t from = 0;
  for (size_t n : parts) {
    const std::vector<int64_t> part(tokens.begin() + from, tokens.begin() + from + n);
    rows.push_back(d.logits(d.hidden_states({at::tensor(part, at::kLong).unsqueeze(0), {}, {}, &cache}))[0]);
    from += n;
  }
  return at::cat(rows, 0);
}

// With the int8-activation kernels (AVX2, AVX-512 VNNI) every row of a prompt computes what a
// decode step at its position computes (per-row kernels, per-row attention, per-position
// angles), so a prompt split anywhere (a shared prefix, then the rest; or token by token) gives
// bitwise the logits of the whole prompt. The float kernels (the portable fallback) run a
// prompt's projections as tile GEMMs, which sum in another order than a one-row GEMV: there the
// parts agree to float rounding through five layers, 1e-4 of the logits' scale (a wrong
// position or a missing key moves them by O(1)).
TEST(DecodePlan, PromptRowsAreBitwiseTheirDecodeSteps) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt8}) {
    LoadOptions o;
    o.quant = format;
    LoadedModel m = load_model(testing::stories260k_dir(), o);
    const bool per_row_kernels = uses_int8_activations(active_kernels(), format);
    const std::vector<int64_t> tokens = {1, 45, 201, 7, 99, 12, 33, 400, 5, 18, 250, 61, 2, 77};
    const at::Tensor whole = logits_in_parts(*m.decoder, tokens, {14});
    for (const std::vector<size_t>& parts : std::vector<std::vector<size_t>>{{9, 5}, {3, 4, 7}, {5, 1, 1, 1, 1, 1, 1, 1, 1, 1}}) {
      const at::Tensor split = logits_in_parts(*m.decoder, tokens, parts);
      const double diff = (split - whole).abs().max().item<double>();
      const std::string what = std::string(quant_format_name(format)) + ", " + std::to_string(parts.size()) + " parts";
      if (per_row_kernels) {
        EXPECT_TRUE(at::equal(split, whole)) << what << ": max difference " << diff;
      } else {
        EXPECT_LT(diff, 1e-4 * whole.abs().max().item<double>()) << what;
      }
    }
  }
}

TEST(DecodePlan, MatchesTheDecoderOnStories260KInEveryFormat) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8}) {
    LoadOptions o;
    o.quant = format;
    LoadedModel m = load_model(testing::stories260k_dir(), o);
    expect_paths_agree(*m.decoder, quant_format_name(format));
  }
}

// A split head (split_table.h): its two sets run as one product of the plan, the logits put back
// in id order; the decoder's path runs each set through the same kernels.
TEST(DecodePlan, MatchesTheDecoderWithASplitHead) {
  const std::filesystem::path dir = testing::fresh_temp_dir("decode_plan_split");
  const ModelSource source = open_model_source(testing::stories260k_dir());
  const at::Tensor table = source.tensors->get("model.embed_tokens.weight").to(at::kFloat);
  QuantizationInfo info{QuantFormat::kNF4_32, EmbeddingStorage::kNF4_32, ""};
  info.table_split = QuantFormat::kInt8;
  PreparedWeights prepared;
  // Every third row int8: both sets interleave through the whole vocabulary.
  prepared.split_tables["model.embed_tokens"] =
      split_table_from(table, at::arange(table.size(0), at::kLong).remainder(3) == 0, QuantFormat::kInt8, QuantFormat::kNF4_32);
  write_quantized_model(dir / "split", source.config, *source.tensors, info, source.tokenizer_files, &prepared);
  LoadedModel m = load_model(dir / "split", LoadOptions{});
  ASSERT_TRUE(m.decoder->lm_head().is_split());
  expect_paths_agree(*m.decoder, "nf4-32 with a split head");
  std::filesystem::remove_all(dir);
}

// A Qwen2-shaped model: q/k/v biases, grouped heads, widths that are not whole nf4 blocks, and an
// untied quantized head; its projections and head with row tiles too when `tiles`.
std::unique_ptr<Decoder> small_qwen2(QuantFormat format, bool tiles = false) {
  ModelConfig c;
  c.architecture = Architecture::kQwen2, c.attention_bias = true;
  c.hidden_size = 96, c.intermediate_size = 200, c.num_layers = 2, c.num_heads = 6, c.num_kv_heads = 2, c.head_dim = 16;
  c.vocab_size = 512, c.max_position_embeddings = 64, c.rope_theta = 1e6, c.rms_norm_eps = 1e-6;
  c.validate("test model");
  at::manual_seed(7);
  auto q = [&](int64_t out, int64_t in) {
    auto m = quantize_for_load(at::randn({out, in}) * 0.1, format);
    return tiles ? with_row_tiles(m) : m;
  };
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
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt4, QuantFormat::kInt8}) {
    for (bool tiles : {false, true})
      expect_paths_agree(*small_qwen2(format, tiles),
                         std::string("qwen2-shaped ") + quant_format_name(format) + (tiles ? " with row tiles" : ""));
  }
}

// Logits of every position of `tokens` as one prompt through the float kernels (no rounding of x).
at::Tensor exact_logits(const Decoder& d, const std::vector<int64_t>& tokens) {
  at::InferenceMode guard;
  KVCache cache(d.config(), 1, int64_t(tokens.size()) + 1);
  return d.logits(d.hidden_states({at::tensor(tokens, at::kLong).unsqueeze(0), {}, {}, &cache}))[0];
}

// load_model adds row tiles beside the codes where the CPU's kernels read them. The tied head
// stays the embedding table and the memory count includes the tiles. The tiles change only the
// summation order, so their logits are as far from the float kernels' (x not rounded to int8) as
// the row-major kernels' are: not exactly as far, since a last-bit difference can flip one
// element's int8 rounding in a later layer (stories260K then moves a position's logits by up to
// ~0.2 of 17), hence 1.5x; a wrong tile row or scale moves them by O(1).
TEST(DecodePlan, RowTilesChangeOnlyTheSummationOrder) {
  const std::vector<int64_t> tokens = {1, 45, 201, 7, 99, 12, 33, 400, 5, 18, 250, 61, 2, 77};
  const bool tiles_expected = test::row_tiles_expected();
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt8}) {
    const std::string what = quant_format_name(format);
    LoadOptions o;
    o.quant = format;
    const LoadedModel tiled = load_model(testing::stories260k_dir(), o);
    o.row_tiles = false;
    const LoadedModel plain = load_model(testing::stories260k_dir(), o);
    size_t tile_bytes = 0;
    for (const DecoderLayer& l : tiled.decoder->layers())
      for (const auto& [name, linear] : l.projections()) {
        const auto& t = linear->quantized_weight()->tiles;
        EXPECT_EQ(t != nullptr, tiles_expected) << what << " " << name;
        tile_bytes += t ? t->bytes() : 0;
      }
    const auto& head_tiles = tiled.decoder->lm_head().quantized_weight()->tiles;
    EXPECT_EQ(head_tiles != nullptr, tiles_expected) << what << " head";
    tile_bytes += head_tiles ? head_tiles->bytes() : 0;
    EXPECT_EQ(plain.decoder->layers()[0].q.quantized_weight()->tiles, nullptr);
    EXPECT_TRUE(tiled.decoder->head_is_embedding()) << "stories260K's head is its table, tiles or not";
    EXPECT_EQ(tiled.decoder->weight_bytes(), plain.decoder->weight_bytes() + tile_bytes) << what;
    const at::Tensor exact = exact_logits(*plain.decoder, tokens);
    const double plain_error = (logits_in_parts(*plain.decoder, tokens, {14}) - exact).abs().max().item<double>();
    const double tiled_error = (logits_in_parts(*tiled.decoder, tokens, {14}) - exact).abs().max().item<double>();
    EXPECT_LE(tiled_error, 1.5 * plain_error) << what;  // both 0 where no int8 kernels run (portable)
  }
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

// A prompt of `n` ordinary tokens (deterministic, spread over the vocabulary).
std::vector<int32_t> prompt_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<int32_t>(3 + (i * 37 + 11) % (vocab - 3)));
  return out;
}

// The prompt through the plan's prefill against the decoder's prompt forward (as generation ran
// it: rows through the int8 kernels), then three decode steps from each cache. Each prompt row is
// computed as a decode step at its position by both paths (per-row kernels whose sums do not
// depend on the batch, per-row attention, per-position angles), so everything is bitwise equal
// on every thread count and however the plan cuts the prompt into passes.
void expect_prefill_matches_the_decoder(const Decoder& d, int64_t n, const std::string& what) {
  at::InferenceMode guard;
  const std::vector<int32_t> prompt = prompt_tokens(n, d.config().vocab_size);
  const std::vector<int32_t> steps = {5, 17, 2};
  const int64_t vocab = d.config().vocab_size;
  KVCache reference(d.config(), 1, n + 4);
  at::Tensor expected;
  {
    PromptRowsScope prompt_rows;
    const at::Tensor h = d.hidden_states({at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong).unsqueeze(0), {}, {}, &reference});
    expected = d.logits(h.select(1, n - 1)).view({-1});
  }
  for (int threads : {1, 2, 3}) {
    WorkerPool pool(threads);
    std::unique_ptr<DecodePlan> plan = DecodePlan::prepare(d, pool);
    ASSERT_NE(plan, nullptr) << what;
    KVCache cache(d.config(), 1, n + 4);
    ASSERT_TRUE(plan->can_prefill(cache, n)) << what;
    at::Tensor logits = at::empty({vocab}, at::kFloat);
    plan->prefill(prompt, cache, logits.data_ptr<float>());
    ASSERT_EQ(cache.length(), n) << what;
    EXPECT_TRUE(at::equal(logits, expected)) << what << ", " << threads << " threads: max difference "
                                             << (logits - expected).abs().max().item<float>();
    for (int64_t l = 0; l < d.config().num_layers; ++l) {
      EXPECT_TRUE(at::equal(cache.layer_keys(l).narrow(2, 0, n), reference.layer_keys(l).narrow(2, 0, n))) << what << " keys " << l;
      EXPECT_TRUE(at::equal(cache.layer_values(l).narrow(2, 0, n), reference.layer_values(l).narrow(2, 0, n))) << what << " values " << l;
    }
    KVCache again(d.config(), 1, n + 4);
    again.assign_prefix(reference, n);
    for (int32_t token : steps) {
      at::Tensor a = at::empty({vocab}, at::kFloat), b = at::empty({vocab}, at::kFloat);
      plan->step(token, cache, a.data_ptr<float>());
      plan->step(token, again, b.data_ptr<float>());
      EXPECT_TRUE(at::equal(a, b)) << what << ", a decode step after the prompt";
    }
  }
}

// Where the kernels take int8 activations (AVX2, AVX-512 VNNI) the plan runs prompts; with the
// portable kernels forced it leaves them to the decoder's tile GEMMs (and says so).
TEST(DecodePlan, PrefillIsBitwiseTheDecodersPromptAcrossPasses) {
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt8}) {
    LoadOptions o;
    o.quant = format;
    LoadedModel m = load_model(testing::stories260k_dir(), o);
    const std::string what = std::string("stories260K ") + quant_format_name(format);
    if (!uses_int8_activations(active_kernels(), format)) {
      KVCache cache(m.decoder->config(), 1, 8);
      EXPECT_FALSE(DecodePlan::prepare(*m.decoder)->can_prefill(cache, 4)) << what;
      continue;
    }
    // Two passes and a part of one; a prompt shorter than the rows that go to the pool.
    expect_prefill_matches_the_decoder(*m.decoder, 2 * DecodePlan::kPromptChunkRows + 9, what);
    expect_prefill_matches_the_decoder(*m.decoder, 5, what + ", 5 tokens");
  }
  for (QuantFormat format : {QuantFormat::kNF4, QuantFormat::kInt4, QuantFormat::kInt8}) {
    if (!uses_int8_activations(active_kernels(), format)) continue;
    for (bool tiles : {false, true})
      expect_prefill_matches_the_decoder(*small_qwen2(format, tiles), 40,
                                         std::string("qwen2-shaped ") + quant_format_name(format) + (tiles ? " with row tiles" : ""));
  }
}

TEST(DecodePlan, PrefillNeedsRoomForTheWholePrompt) {
  std::unique_ptr<Decoder> d = small_qwen2(QuantFormat::kInt8);
  std::unique_ptr<DecodePlan> plan = DecodePlan::prepare(*d);
  ASSERT_NE(plan, nullptr);
  if (!uses_int8_activations(active_kernels(), QuantFormat::kInt8)) GTEST_SKIP() << "portable kernels: prompts stay with the decoder";
  KVCache cache(d->config(), 1, 10);
  EXPECT_TRUE(plan->can_prefill(cache, 10));
  EXPECT_FALSE(plan->can_prefill(cache, 11)) << "past the cache";
  EXPECT_FALSE(plan->can_prefill(cache, 0));
  KVCache long_cache(d->config(), 1, 80);
  EXPECT_FALSE(plan->can_prefill(long_cache, 65)) << "past the model's 64 positions";
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
