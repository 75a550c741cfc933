#include "optim/random_projection.h"

#include <cmath>

#include "core/rng.h"

namespace hearth {
namespace optim {

uint64_t projection_seed(uint64_t base_seed, uint64_t param_index, uint64_t refresh) {
  return mix_seed(mix_seed(base_seed, param_index), refresh);
}

at::Tensor random_projection(uint64_t seed, int64_t rank, int64_t dim, at::ScalarType dtype) {
  at::Generator gen = make_generator(seed);
  at::Tensor p = at::randn({rank, dim}, gen, at::TensorOptions().dtype(at::kFloat));
  p.div_(std::sqrt(static_cast<double>(rank)));
  return p.to(dtype);
}

}  // namespace optim
}  // namespace hearth
