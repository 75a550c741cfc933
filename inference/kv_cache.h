// The key/value cache of one generation: preallocated per layer for a maximum length, so
// decoding a token writes in place and never reallocates. Sliding-window (local) layers keep
// only what a later query can still see: the last window - 1 positions, in a buffer of
// 2 x window slots whose tail moves to the front when it fills (a copy of window - 1 positions
// once per window + 1 tokens). A Gemma 3 cache for 32k positions then holds 5 of its 6 layers
// in 1,024 slots instead of 32,768.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "inference/model_config.h"

namespace hearth {

class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t batch, int64_t max_length, at::ScalarType dtype = at::kFloat);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  // Stores k, v [B, kv_heads, T, head_dim] of `layer` at positions [length, length + T) and
  // returns views of the keys and values a query of those positions may attend to: every
  // position so far, or for a windowed layer those from local_start(). The length advances
  // once every layer has been written.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  // Called by the decoder after all layers appended T new positions.
  void advance(int64_t t) { length_ += t; }
  void clear();
  // The first position append() returns for a windowed (local) layer at the current length;
  // 0 when the cache keeps every position of every layer.
  int64_t local_start() const;
  // Starts this cache as a copy of the first `length` positions of `prefix` (same layers, heads
  // and batch): a shared prompt prefix (a system prompt) computed once, reused per request.
  void assign_prefix(const KVCache& prefix, int64_t length);
  size_t bytes() const;
  at::ScalarType dtype() const { return keys_.front().scalar_type(); }
  int64_t batch() const { return keys_.front().size(0); }
  // Layer l's whole key / value storage [B, kv_heads, capacity, head_dim], for the prepared
  // decode step (decode_plan.h, which runs only models without windowed layers), which writes
  // the new position itself and then calls advance().
  at::Tensor& layer_keys(int64_t l) { return keys_[l]; }
  at::Tensor& layer_values(int64_t l) { return values_[l]; }

 private:
  bool windowed(int64_t layer) const { return window_ > 0 && local_[layer]; }
  std::pair<at::Tensor, at::Tensor> append_windowed(int64_t layer, const at::Tensor& k, const at::Tensor& v);

  std::vector<at::Tensor> keys_, values_;  // per layer [B, kv_heads, slots, head_dim]
  std::vector<int64_t> first_;             // per layer: the position held at slot 0
  std::vector<bool> local_;                // per layer: a sliding-window layer
  int64_t window_ = 0;                     // > 0 when local layers keep a window only
  int64_t length_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace hearth
