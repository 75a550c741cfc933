#include "inference/kv_cache.h"

#include "core/error.h"

namespace hearth {

KVCache::KVCache(const ModelConfig& config, int64_t batch, int64_t max_length, at::ScalarType dtype)
    : capacity_(max_length) {
  require(max_length > 0, ErrorCode::kInvalidArgument, "KV cache length must be positive");
  // Windowing pays only when the window's buffer is smaller than the whole context.
  if (config.sliding_window > 0 && 2 * config.sliding_window < max_length) window_ = config.sliding_window;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    local_.push_back(config.is_local_layer(l));
    const int64_t slots = windowed(l) ? 2 * window_ : max_length;
    keys_.push_back(at::empty({batch, config.num_kv_heads, slots, config.head_dim}, dtype));
    values_.push_back(at::empty({batch, config.num_kv_heads, slots, config.head_dim}, dtype));
    first_.push_back(0);
  }
}

void KVCache::clear() {
  length_ = 0;
  std::fill(first_.begin(), first_.end(), 0);
}

int64_t KVCache::local_start() const { return window_ > 0 ? length_ - std::min(length_, window_ - 1) : 0; }

std::pair<at::Tensor, at::Tensor> KVCache::append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t t = k.size(2);
  require(length_ + t <= capacity_, ErrorCode::kInvalidArgument,
          "context of " + std::to_string(length_ + t) + " tokens exceeds the cache of " + std::to_string(capacity_));
  if (windowed(layer)) return append_windowed(layer, k, v);
  keys_[layer].narrow(2, length_, t).copy_(k);
  values_[layer].narrow(2, length_, t).copy_(v);
  return {keys_[layer].narrow(2, 0, length_ + t), values_[layer].narrow(2, 0, length_ + t)};
}

std::pair<at::Tensor, at::Tensor> KVCache::append_windowed(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor& keys = keys_[layer];
  at::Tensor& values = values_[layer];
  int64_t& first = first_[layer];
  const int64_t t = k.size(2), slots = keys.size(2);
  const int64_t from = local_start(), kept = length_ - from;
  if (kept + t > slots) {
    // A chunk longer than the buffer (a long prompt): attention reads the kept positions and the
    // new ones joined; the buffer keeps the newest.
    const at::Tensor all_keys = at::cat({keys.narrow(2, from - first, kept), k}, 2);
    const at::Tensor all_values = at::cat({values.narrow(2, from - first, kept), v}, 2);
    keys.copy_(all_keys.narrow(2, kept + t - slots, slots));
    values.copy_(all_values.narrow(2, kept + t - slots, slots));
    first = length_ + t - slots;
    return {all_keys, all_values};
  }
  if (length_ - first + t > slots) {
    // Full: the kept tail moves to the front (cloned first, as the two ranges may overlap).
    keys.narrow(2, 0, kept).copy_(keys.narrow(2, from - first, kept).clone());
    values.narrow(2, 0, kept).copy_(values.narrow(2, from - first, kept).clone());
    first = from;
  }
  keys.narrow(2, length_ - first, t).copy_(k);
  values.narrow(2, length_ - first, t).copy_(v);
  return {keys.narrow(2, from - first, kept + t), values.narrow(2, from - first, kept + t)};
}

void KVCache::assign_prefix(const KVCache& prefix, int64_t length) {
  require(length >= 0 && length <= prefix.length() && length <= capacity_, ErrorCode::kInvalidArgument,
          "a prefix of " + std::to_string(length) + " positions does not fit (the prefix has " +
              std::to_string(prefix.length()) + ", this cache holds " + std::to_string(capacity_) + ")");
  require(prefix.keys_.size() == keys_.size() && (keys_.empty() || (prefix.keys_[0].size(0) == keys_[0].size(0) &&
                                                                    prefix.keys_[0].size(1) == keys_[0].size(1) &&
                                                                    prefix.keys_[0].size(3) == keys_[0].size(3))),
          ErrorCode::kInvalidArgument, "the prefix's cache has another shape");
  length_ = length;
  for (size_t l = 0; l < keys_.size(); ++l) {
    // The positions this cache keeps at `length`, read from where the prefix holds them.
    const int64_t from = windowed(static_cast<int64_t>(l)) ? local_start() : 0, count = length - from;
    require(from >= prefix.first_[l], ErrorCode::kInvalidArgument,
            "the prefix's cache no longer holds the positions from " + std::to_string(from));
    keys_[l].narrow(2, 0, count).copy_(prefix.keys_[l].narrow(2, from - prefix.first_[l], count));
    values_[l].narrow(2, 0, count).copy_(prefix.values_[l].narrow(2, from - prefix.first_[l], count));
    first_[l] = from;
  }
}

size_t KVCache::bytes() const {
  size_t total = 0;
  for (const auto& k : keys_) total += k.nbytes();
  for (const auto& v : values_) total += v.nbytes();
  return total;
}

}  // namespace hearth
