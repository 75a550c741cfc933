// A stable fingerprint of a model's weights, so an adapter can refuse a base it was not
// trained on. Cheap: names, shapes, dtypes and evenly spaced samples of every tensor's bytes.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "inference/tensor_source.h"

namespace hearth {

// Folds tensors in one at a time, for writers that see each tensor once (quantizing a merged
// model) and cannot afford a second pass to fingerprint it.
class FingerprintBuilder {
 public:
  void add(const std::string& name, const at::Tensor& tensor);
  // 16 hex digits.
  std::string hex() const;

 private:
  void add_bytes(const void* data, size_t n);
  uint64_t hash_ = 1469598103934665603ull;  // FNV-1a offset basis
};

// 16 hex digits; equal for the same weights however they are stored (views, copies), and equal
// to a FingerprintBuilder fed the same tensors in names() order.
std::string weights_fingerprint(const TensorSource& tensors);

}  // namespace hearth
