// The decode step (one new token for each of one or more sequences) as a plan prepared once:
// raw pointers to every layer's packed weights, norms and biases, buffers for each intermediate,
// and the row chunks of every matrix-vector product, run on the persistent worker pool
// (core/worker_pool.h) with one synchronization per phase. The layer-by-layer ATen path spends
// more time dispatching its ~90 small ops per layer and forking OpenMP regions than a small model
// spends reading its weights; this path does the same arithmetic with the same kernels and none
// of that overhead.
//
// Several sequences (the requests of a server's batched step, each with its own KV cache and its
// own adapter) share one pass over the weights: each packed weight is unpacked once for all of
// them (QuantKernelSet::matmul_q8_rows). Every sequence's arithmetic is the same whatever the
// batch, so a request decodes bitwise the same alone or batched. Prefill and training keep the
// ATen path.
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

  // Whether a step may run now for these caches (sequence i is row i of the adapters' routing):
  // every adapter set on a projection is a plain low-rank update for every row (LoRA; adapters
  // are set per request, so this is asked before every step; DoRA and training adapters keep the
  // ATen path), and each cache is fp32, batch 1, with room for one more position.
  bool can_step(const std::vector<KVCache*>& caches) const;
  bool can_step(KVCache& cache) const { return can_step(std::vector<KVCache*>{&cache}); }
  // Runs token i at position caches[i]->length() for every sequence i: appends its keys and
  // values to its cache, advances it, and writes its next-token logits to logits[i] (vocab floats).
  void step(const std::vector<int32_t>& tokens, const std::vector<KVCache*>& caches, const std::vector<float*>& logits);
  void step(int32_t token, KVCache& cache, float* logits) { step({token}, {&cache}, {logits}); }

  struct Matrix;
  struct Layer;
  struct Product;
  ~DecodePlan();

 private:
  DecodePlan(const Decoder& decoder, WorkerPool& pool);
  void resize_for(int64_t seqs);
  void attention(int64_t layer, const std::vector<KVCache*>& caches);
  void run(Product& product, int64_t seqs);

  const Decoder& decoder_;
  WorkerPool& pool_;
  std::vector<Layer> layers_;
  std::unique_ptr<Product> head_;
  // The step's buffers, one row per sequence: residual stream, normed input, q/k/v, attention
  // output, projections, MLP, and each sequence's rotary angles.
  std::vector<float> h_, x_, q_, k_, v_, attn_, o_, gate_, up_, mlp_, down_, cos_, sin_;
  int64_t seqs_ = 0;  // rows the buffers hold
};

}  // namespace hearth
