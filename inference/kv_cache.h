// The key/value cache of one generation: preallocated per layer for a maximum length, so
// decoding a token writes in place and never reallocates.
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
  // Stores k, v [B, kv_heads, T, head_dim] of `layer` at [length, length + T) and returns views
  // of all keys and values so far. The length advances once every layer has been written.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  // Called by the decoder after all layers appended T new positions.
  void advance(int64_t t) { length_ += t; }
  void clear() { length_ = 0; }
  // Starts this cache as a copy of the first `length` positions of `prefix` (same layers, heads
  // and batch): a shared prompt prefix (a system prompt) computed once, reused per request.
  void assign_prefix(const KVCache& prefix, int64_t length);
  size_t bytes() const;
  at::ScalarType dtype() const { return keys_.front().scalar_type(); }

 private:
  std::vector<at::Tensor> keys_, values_;  // per layer [B, kv_heads, capacity, head_dim]
  int64_t length_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace hearth
