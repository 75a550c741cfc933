// The decoder on the real stories260K checkpoint: greedy text, perplexity against an
// independent implementation, and the converted Hugging Face folder.
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "inference/generator.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "test_helpers.h"

namespace hearth {
namespace {

// scripts/reference/llama2c_reference.py (numpy, float64) on the same file and protocol:
//   python3 scripts/reference/llama2c_reference.py ppl --ctx 256 --model ... --tokenizer ... --data valid_a.txt
constexpr double kReferencePerplexity = 4.768683419265;
constexpr int64_t kReferenceTokens = 192512;

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new LoadedModel(load_model(testing::stories260k_dir(), LoadOptions{}));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static LoadedModel* model_;
};
LoadedModel* Stories260K::model_ = nullptr;

TEST_F(Stories260K, LoadsTheRealConfig) {
  const ModelConfig& c = model_->decoder->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(model_->format, "llama2c");
}

TEST_F(Stories260K, GreedyFromBosTellsTheKnownStory) {
  GenerationOptions options;
  options.max_tokens = 40;
  options.sampling.temperature = 0;
  GenerationResult r = generate(*model_->decoder, *model_->tokenizer, {model_->tokenizer->bos_id()}, options);
  ASSERT_EQ(r.tokens.size(), 40u);
  EXPECT_EQ(r.text,
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
            "she saw a big, r");
}

TEST_F(Stories260K, StreamingDeliversTheSameText) {
  GenerationOptions options;
  options.max_tokens = 25;
  options.sampling.temperature = 0.9f;
  options.sampling.seed = 7;
  std::string streamed;
  GenerationResult r = generate(*model_->decoder, *model_->tokenizer, {1}, options,
                                [&](std::string_view s) { streamed += s; });
  EXPECT_EQ(streamed, r.text);
  std::vector<int32_t> with_bos = {1};
  with_bos.insert(with_bos.end(), r.tokens.begin(), r.tokens.end());
  EXPECT_EQ(r.text, model_->tokenizer->decode(with_bos));
}

TEST_F(Stories260K, SeededSamplingIsReproducible) {
  GenerationOptions options;
  options.max_tokens = 30;
  options.sampling.temperature = 1.0f;
  options.sampling.seed = 42;
  auto a = generate(*model_->decoder, *model_->tokenizer, {1}, options);
  auto b = generate(*model_->decoder, *model_->tokenizer, {1}, options);
  EXPECT_EQ(a.tokens, b.tokens);
  options.sampling.seed = 43;
  auto c = generate(*model_->decoder, *model_->tokenizer, {1}, options);
  EXPECT_NE(a.tokens, c.tokens);
}

TEST_F(Stories260K, CachedDecodeMatchesFullRecompute) {
  at::InferenceMode guard;
  std::vector<int64_t> ids = {1, 403, 407, 261, 378, 432, 383, 286, 261};
  at::Tensor all = at::tensor(ids, at::kLong).unsqueeze(0);
  at::Tensor full = model_->decoder->forward({all, {}, {}, nullptr});
  KVCache cache(model_->decoder->config(), 1, 64);
  model_->decoder->forward({all.narrow(1, 0, 5), {}, {}, &cache});
  for (int64_t t = 5; t < all.size(1); ++t) {
    at::Tensor step = model_->decoder->forward({all.narrow(1, t, 1), {}, {}, &cache});
    EXPECT_LT((step.select(1, 0) - full.select(1, t)).abs().max().item<float>(), 1e-4) << "position " << t;
  }
}

TEST_F(Stories260K, PerplexityAgreesWithIndependentImplementation) {
  const std::string text = read_file(asset_path("data/tinystories/valid_a.txt"));
  PerplexityResult r = evaluate_perplexity(*model_->decoder, perplexity_token_stream(*model_->tokenizer, text), 256);
  EXPECT_EQ(r.tokens_scored, kReferenceTokens);
  EXPECT_NEAR(r.perplexity, kReferencePerplexity, kReferencePerplexity * 0.005);
  RecordProperty("perplexity", std::to_string(r.perplexity));
}

TEST_F(Stories260K, ConvertedFolderGivesTheSameLogitsAndPerplexity) {
  auto dir = testing::fresh_temp_dir("convert");
  convert_llama2c_to_hf(testing::stories260k_dir(), dir / "hf");
  LoadedModel hf = load_model(dir / "hf", LoadOptions{});
  EXPECT_EQ(hf.format, "huggingface");
  at::InferenceMode guard;
  at::Tensor ids = at::randint(3, 512, {2, 100}, at::kLong);
  at::Tensor a = model_->decoder->forward({ids, {}, {}, nullptr});
  at::Tensor b = hf.decoder->forward({ids, {}, {}, nullptr});
  EXPECT_LT((a - b).abs().max().item<float>(), 1e-5);
  const std::string text = read_file(asset_path("data/tinystories/valid_a.txt")).substr(0, 40000);
  auto pa = evaluate_perplexity(*model_->decoder, perplexity_token_stream(*model_->tokenizer, text), 256);
  auto pb = evaluate_perplexity(*hf.decoder, perplexity_token_stream(*hf.tokenizer, text), 256);
  EXPECT_EQ(pa.tokens_scored, pb.tokens_scored);
  EXPECT_NEAR(pa.perplexity, pb.perplexity, 1e-5 * pa.perplexity);
}

TEST_F(Stories260K, Bf16LogitsStayCloseToFp32) {
  LoadOptions bf16;
  bf16.compute_dtype = at::kBFloat16;
  LoadedModel m16 = load_model(testing::stories260k_dir(), bf16);
  at::InferenceMode guard;
  at::Tensor ids = at::randint(3, 512, {1, 64}, at::kLong);
  at::Tensor a = model_->decoder->forward({ids, {}, {}, nullptr});
  at::Tensor b = m16.decoder->forward({ids, {}, {}, nullptr});
  EXPECT_LT(((a - b).norm() / a.norm()).item<float>(), 2e-2);
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

TEST_F(Stories260K, PackedSegmentsDoNotAttendAcrossDocuments) {
  // A row packing two documents, with positions restarting and a segment mask, must give the
  // second document exactly the logits it gets alone.
  at::InferenceMode guard;
  at::Tensor doc_a = at::randint(3, 512, {1, 20}, at::kLong);
  at::Tensor doc_b = at::randint(3, 512, {1, 12}, at::kLong);
  at::Tensor packed = at::cat({doc_a, doc_b}, 1);
  at::Tensor positions = at::cat({at::arange(20, at::kLong), at::arange(12, at::kLong)}).unsqueeze(0);
  at::Tensor segments = at::cat({at::zeros({20}, at::kLong), at::ones({12}, at::kLong)}).unsqueeze(0);
  at::Tensor together = model_->decoder->forward({packed, positions, segments, nullptr});
  at::Tensor alone = model_->decoder->forward({doc_b, {}, {}, nullptr});
  // Rounding from other matmul shapes stays far below what a leak across documents gives.
  EXPECT_LT((together.narrow(1, 20, 12) - alone).abs().max().item<float>(), 1e-4);
  at::Tensor alone_a = model_->decoder->forward({doc_a, {}, {}, nullptr});
  EXPECT_LT((together.narrow(1, 0, 20) - alone_a).abs().max().item<float>(), 1e-4);
  at::Tensor unmasked = model_->decoder->forward({packed, positions, {}, nullptr});
  EXPECT_GT((unmasked.narrow(1, 20, 12) - alone).abs().max().item<float>(), 1e-2);
}

}  // namespace
}  // namespace hearth
