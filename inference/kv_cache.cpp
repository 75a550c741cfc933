#include "inference/kv_cache.h"

#include "core/error.h"

namespace hearth {

KVCache::KVCache(const ModelConfig& config, int64_t batch, int64_t max_length, at::ScalarType dtype)
    : capacity_(max_length) {
  require(max_length > 0, ErrorCode::kInvalidArgument, "KV cache length must be positive");
  for (int64_t l = 0; l < config.num_layers; ++l) {
    keys_.push_back(at::empty({batch, config.num_kv_heads, max_length, config.head_dim}, dtype));
    values_.push_back(at::empty({batch, config.num_kv_heads, max_length, config.head_dim}, dtype));
  }
}

std::pair<at::Tensor, at::Tensor> KVCache::append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  const int64_t t = k.size(2);
  require(length_ + t <= capacity_, ErrorCode::kInvalidArgument,
          "context of " + std::to_string(length_ + t) + " tokens exceeds the cache of " + std::to_string(capacity_));
  keys_[layer].narrow(2, length_, t).copy_(k);
  values_[layer].narrow(2, length_, t).copy_(v);
  return {keys_[layer].narrow(2, 0, length_ + t), values_[layer].narrow(2, 0, length_ + t)};
}

void KVCache::assign_prefix(const KVCache& prefix, int64_t length) {
  require(length >= 0 && length <= prefix.length() && length <= capacity_, ErrorCode::kInvalidArgument,
          "a prefix of " + std::to_string(length) + " positions does not fit (the prefix has " +
              std::to_string(prefix.length()) + ", this cache holds " + std::to_string(capacity_) + ")");
  require(prefix.keys_.size() == keys_.size() && (keys_.empty() || (prefix.keys_[0].size(0) == keys_[0].size(0) &&
                                                                    prefix.keys_[0].size(1) == keys_[0].size(1) &&
                                                                    prefix.keys_[0].size(3) == keys_[0].size(3))),
          ErrorCode::kInvalidArgument, "the prefix's cache has another shape");
  for (size_t l = 0; l < keys_.size(); ++l) {
    keys_[l].narrow(2, 0, length).copy_(prefix.keys_[l].narrow(2, 0, length));
    values_[l].narrow(2, 0, length).copy_(prefix.values_[l].narrow(2, 0, length));
  }
  length_ = length;
}

size_t KVCache::bytes() const {
  size_t total = 0;
  for (const auto& k : keys_) total += k.nbytes();
  for (const auto& v : values_) total += v.nbytes();
  return total;
}

}  // namespace hearth
