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
// batch, so a request decodes bitwise the same alone or batched.
//
// A prompt runs through the same plan (prefill): its tokens are rows of one sequence at
// consecutive positions, in chunks of kPromptChunkRows, each row computed with the kernels and
// the per-row attention of a decode step at its position. The row-tile kernels give a row the same
// sums whatever the batch, so on the int8-activation kernels a prompt's last logits and its KV
// cache are bitwise what the decoder's prompt forward gives; and the prompt spends no time in
// ATen's dispatch, allocator or OpenMP fork-joins. Training keeps the ATen path.
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

  // Whether prefill may run `tokens` tokens into `cache` now: as can_step, with room for all.
  bool can_prefill(KVCache& cache, int64_t tokens) const;
  // Runs the prompt `tokens` at positions from cache.length() on: appends their keys and values,
  // advances the cache by tokens.size() and writes the last token's next-token logits (vocab floats).
  void prefill(const std::vector<int32_t>& tokens, KVCache& cache, float* logits);

  // One request's prompt (or a chunk of it) in a prefill of several: a server's prompt step.
  struct Prompt {
    std::vector<int32_t> tokens;
    KVCache* cache = nullptr;
    float* logits = nullptr;  // the last token's next-token logits (vocab floats)
  };
  // Whether these prompts may run now: as can_prefill for each, every cache a different one.
  bool can_prefill(const std::vector<Prompt>& prompts) const;
  // Runs several prompts whose rows share the passes over the weights. The adapters' routing has
  // one row per prompt token, the prompts' tokens one after another (the rows of the decoder's
  // routed forward over the same prompts). Each prompt gets bitwise what it gets alone.
  void prefill(const std::vector<Prompt>& prompts);

  // Prompt rows per pass: enough sequences for the wide tile passes to reuse each weight block
  // many times, few enough that the pass's buffers stay small (a few MB on Qwen2.5-0.5B).
  static constexpr int64_t kPromptChunkRows = 64;

  struct Matrix;
  struct Layer;
  struct Product;
  struct Activations;
  ~DecodePlan();

 private:
  DecodePlan(const Decoder& decoder, WorkerPool& pool);
  // Row r of a pass: the cache it appends to and attends over, at which position, and which row
  // of the adapters' routing holds its adapters.
  struct PassRow {
    KVCache* cache;
    int64_t position;
    int64_t routing;
  };
  // Whether caches[i] may take new_positions[i] more positions, with adapter_rows rows routed.
  bool can_run(const std::vector<KVCache*>& caches, const std::vector<int64_t>& new_positions, int64_t adapter_rows) const;
  // Whether every product of a prompt has int8-activation kernels (per-row prompts pay off).
  bool prompt_kernels_ready() const;
  // The prompts in passes of kPromptChunkRows rows, then each one's last-token logits. shared:
  // every row takes routing row 0 (one prompt), else the rows' running index.
  void prefill_rows(const std::vector<Prompt>& prompts, bool shared_routing);
  void resize_for(int64_t seqs);
  // Every layer for the rows' tokens; leaves the residual stream in h_.
  void layers_pass(const std::vector<int32_t>& tokens, const std::vector<PassRow>& rows);
  void attention(int64_t layer, const std::vector<PassRow>& rows);
  // One product for rows [0, routing.size()); row s takes routing row routing[s]'s adapters.
  void run(Product& product, const std::vector<int64_t>& routing);
  // Next-token logits of rows [0, routing.size()) of x_ (normed) into logits[s].
  void head(const std::vector<int64_t>& routing, const std::vector<float*>& logits);
  // The same for a split head (split_table.h): both sets' rows in slot order, then in id order.
  void split_head(const std::vector<int64_t>& routing, const std::vector<float*>& logits);
  // fn(row) for rows [0, seqs): on the pool when there are enough rows to be worth a phase.
  template <typename F>
  void for_rows(int64_t seqs, const F& fn);

  const Decoder& decoder_;
  WorkerPool& pool_;
  std::vector<Layer> layers_;
  std::unique_ptr<Product> head_;
  std::vector<Linear> split_head_parts_;  // a split head's two sets, as the head product reads them
  std::vector<float> split_logits_;       // their outputs, one row of vocab floats per sequence
  std::vector<Activations> activations_;  // per input slot of a product
  // The step's buffers, one row per sequence: residual stream, normed input, q/k/v, attention
  // output, projections, MLP, and each sequence's rotary angles.
  std::vector<float> h_, x_, q_, k_, v_, attn_, o_, gate_, up_, mlp_, down_, cos_, sin_;
  std::vector<int64_t> routing_;  // this pass's routing row of each row
  int64_t routed_rows_ = 0;       // rows the adapters' routing holds for this step or prefill
  int64_t seqs_ = 0;  // rows the buffers hold
};

}  // namespace hearth
