// The decode step (one new token, batch 1) as a plan prepared once per generation: raw pointers
// to every layer's packed weights, norms and biases, buffers for each intermediate, and the
// row chunks of every matrix-vector product, run on the persistent worker pool (core/worker_pool.h)
// with one synchronization per phase. The layer-by-layer ATen path spends more time dispatching
// its ~90 small ops per layer and forking OpenMP regions than a small model spends reading its
// weights; this path does the same arithmetic with the same kernels and none of that overhead.
// Prefill, training and batched serving keep the ATen path.
#pragma once
#include <memory>
#include <vector>

#include "core/worker_pool.h"
#include "inference/decoder.h"
#include "inference/kv_cache.h"

namespace hearth {

class DecodePlan {
 public:
  // A plan for `decoder`, or null when its weights are not all quantized projections (dense
  // weights keep the ATen path). The decoder must outlive the plan.
  static std::unique_ptr<DecodePlan> prepare(const Decoder& decoder, WorkerPool& pool = decode_worker_pool());

  // Whether a step may run now: every adapter set on a projection is a plain low-rank update
  // (LoRA; adapters are set per request, so this is asked before every step; DoRA and training
  // adapters keep the ATen path) and the cache is fp32, batch 1, with room for one more.
  bool can_step(const KVCache& cache) const;
  // Runs the token at position cache.length(): appends its keys and values to `cache`, advances
  // it, and writes the next-token logits to `logits` (vocab floats).
  void step(int32_t token, KVCache& cache, float* logits);

  struct Matrix;
  struct Layer;
  struct Product;
  ~DecodePlan();

 private:
  DecodePlan(const Decoder& decoder, WorkerPool& pool);
  void attention(int64_t layer, KVCache& cache, int64_t position);
  void run(Product& product);

  const Decoder& decoder_;
  WorkerPool& pool_;
  std::vector<Layer> layers_;
  std::unique_ptr<Product> head_;
  // The step's buffers: residual stream, normed input, q/k/v, attention output, projections, MLP.
  std::vector<float> h_, x_, q_, k_, v_, attn_, o_, gate_, up_, mlp_, down_, cos_, sin_;
};

}  // namespace hearth
