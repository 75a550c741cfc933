// The KV cache of a model with sliding-window layers (Gemma 3's structure, tiny-gemma3: five
// local layers of window 4, one global) keeps only each local layer's window, and decoding
// through it computes what the whole sequence computes, whatever the chunk sizes, across the
// buffer's moves, and from a copied prefix.
#include <gtest/gtest.h>

#include "inference/kv_cache.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "test_helpers.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

class WindowedCache : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing::fresh_temp_dir("windowed_cache"));
    init_random_model("tiny-gemma3", 3, *dir_ / "m");
    model_ = new LoadedModel(load_model(*dir_ / "m", LoadOptions{}));
  }
  static void TearDownTestSuite() {
    delete model_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static const Decoder& decoder() { return *model_->decoder; }

  static at::Tensor logits(const std::vector<int64_t>& tokens, KVCache* cache) {
    ForwardInput in;
    in.tokens = at::tensor(tokens, at::kLong).view({1, -1});
    in.cache = cache;
    return decoder().forward(in)[0];
  }
  // Logits of `sequence` fed through `cache` in chunks of the given sizes, starting at `from`.
  static at::Tensor chunked(const std::vector<int64_t>& sequence, KVCache& cache, size_t from, const std::vector<size_t>& sizes) {
    std::vector<at::Tensor> rows;
    for (size_t n : sizes) {
      rows.push_back(logits(std::vector<int64_t>(sequence.begin() + from, sequence.begin() + from + n), &cache));
      from += n;
    }
    return at::cat(rows, 0);
  }
  static double relative_gap(const at::Tensor& a, const at::Tensor& b) {
    return ((a - b).abs().max() / a.abs().max()).item<double>();
  }
  static std::vector<int64_t> sequence(int64_t n) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < n; ++i) out.push_back((i * 37 + 11) % 500 + 1);
    return out;
  }

  static fs::path* dir_;
  static LoadedModel* model_;
};
fs::path* WindowedCache::dir_ = nullptr;
LoadedModel* WindowedCache::model_ = nullptr;

TEST_F(WindowedCache, LocalLayersHoldTwoWindowsOfSlots) {
  const ModelConfig& c = decoder().config();
  ASSERT_EQ(c.sliding_window, 4);
  int64_t local = 0;
  for (int64_t l = 0; l < c.num_layers; ++l) local += c.is_local_layer(l);
  ASSERT_GT(local, 0);
  const size_t per_slot = 2 * sizeof(float) * c.num_kv_heads * c.head_dim;  // a key and a value
  EXPECT_EQ(KVCache(c, 1, 1000).bytes(), per_slot * (local * 8 + (c.num_layers - local) * 1000));
  // A context within two windows keeps every position (the buffer would be no smaller).
  EXPECT_EQ(KVCache(c, 1, 8).bytes(), per_slot * c.num_layers * 8);
}

// Chunks of every kind: a long prompt (longer than the buffer), single tokens across several
// moves of the kept tail, a chunk that fits after a move, one longer than the buffer again.
// Bound: the same operations over the same keys, summed in another order (the full forward's
// softmax spans masked keys too): measured ~1e-7 of the largest logit; 1e-5 allows for the
// reduction order of the BLAS calls and no more (a missing or misplaced key moves logits by
// percent).
TEST_F(WindowedCache, ChunkedDecodeComputesTheWholeSequence) {
  at::InferenceMode inference;
  const std::vector<int64_t> tokens = sequence(60);
  const at::Tensor full = logits(tokens, nullptr);
  KVCache cache(decoder().config(), 1, 64);
  const std::vector<size_t> sizes = {13, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 9, 2, 1, 1, 21};
  EXPECT_LT(relative_gap(full, chunked(tokens, cache, 0, sizes)), 1e-5);
  EXPECT_EQ(cache.length(), 60);
  EXPECT_EQ(cache.local_start(), 57);
}

// A prefix computed once (a shared system prompt) and copied into a request's cache: the copy
// takes the positions the request's local layers still need from wherever the prefix holds them.
TEST_F(WindowedCache, ACopiedPrefixContinuesAsTheWholeSequence) {
  at::InferenceMode inference;
  const std::vector<int64_t> tokens = sequence(40);
  const at::Tensor full = logits(tokens, nullptr);
  KVCache prefix(decoder().config(), 1, 23);
  chunked(tokens, prefix, 0, {5, 1, 1, 16});
  KVCache request(decoder().config(), 1, 64);
  request.assign_prefix(prefix, 23);
  EXPECT_EQ(request.length(), 23);
  const at::Tensor rest = chunked(tokens, request, 23, {1, 1, 15});
  EXPECT_LT(relative_gap(full.narrow(0, 23, 17), rest), 1e-5);
  // A shorter prefix of it is refused when the prefix's buffer no longer holds its window.
  KVCache other(decoder().config(), 1, 64);
  EXPECT_THROW(other.assign_prefix(prefix, 10), Error);
}

}  // namespace
}  // namespace hearth
