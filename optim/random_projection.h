// The seeded Gaussian projection APOLLO uses: a [rank, dim] matrix with entries N(0, 1/rank),
// regenerated from (base seed, parameter index, refresh count) whenever it is needed.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace hearth {
namespace optim {

// The seed of the `refresh`-th projection of parameter `param_index`.
uint64_t projection_seed(uint64_t base_seed, uint64_t param_index, uint64_t refresh);

// A [rank, dim] float32 matrix of N(0, 1) / sqrt(rank) draws from a generator seeded with
// `seed`, converted to `dtype`. Always drawn in float32 so the same seed gives the same
// projection (up to rounding) whatever the parameter dtype.
at::Tensor random_projection(uint64_t seed, int64_t rank, int64_t dim, at::ScalarType dtype);

}  // namespace optim
}  // namespace hearth
