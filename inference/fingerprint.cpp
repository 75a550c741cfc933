#include "inference/fingerprint.h"

#include <algorithm>
#include <cstdio>

namespace hearth {

void FingerprintBuilder::add_bytes(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) hash_ = (hash_ ^ p[i]) * 1099511628211ull;
}

void FingerprintBuilder::add(const std::string& name, const at::Tensor& tensor) {
  constexpr int64_t kSamples = 64;  // bytes hashed per tensor: kSamples runs of 64 bytes
  const at::Tensor t = tensor.contiguous();
  add_bytes(name.data(), name.size() + 1);
  for (int64_t d : t.sizes()) add_bytes(&d, sizeof(d));
  const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
  const int64_t n = static_cast<int64_t>(t.nbytes());
  const int64_t step = std::max<int64_t>(64, n / kSamples);
  for (int64_t off = 0; off < n; off += step) add_bytes(bytes + off, static_cast<size_t>(std::min<int64_t>(64, n - off)));
}

std::string FingerprintBuilder::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(hash_));
  return buf;
}

std::string weights_fingerprint(const TensorSource& tensors) {
  FingerprintBuilder f;
  for (const std::string& name : tensors.names()) {
    f.add(name, tensors.get(name));
    // Each sampled run faults in the file's read-ahead around it: ~1.3 MB a tensor, 0.38 GB
    // resident over qwen2.5-0.5b's 290 tensors if kept.
    tensors.release(name);
  }
  return f.hex();
}

}  // namespace hearth
