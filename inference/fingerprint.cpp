#include "inference/fingerprint.h"

#include <cstdio>

namespace hearth {
namespace {

struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
};

}  // namespace

std::string weights_fingerprint(const TensorSource& tensors) {
  constexpr int64_t kSamples = 64;  // bytes hashed per tensor: kSamples runs of 64 bytes
  Fnv1a f;
  for (const std::string& name : tensors.names()) {
    at::Tensor t = tensors.get(name).contiguous();
    f.add(name);
    for (int64_t d : t.sizes()) f.add(&d, sizeof(d));
    const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
    const int64_t n = static_cast<int64_t>(t.nbytes());
    const int64_t step = std::max<int64_t>(64, n / kSamples);
    for (int64_t off = 0; off < n; off += step) f.add(bytes + off, static_cast<size_t>(std::min<int64_t>(64, n - off)));
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

}  // namespace hearth
