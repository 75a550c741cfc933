// Seeded random number generators, so every random choice in Hearth can be replayed.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace hearth {

// A LibTorch CPU generator seeded with `seed`.
at::Generator make_generator(uint64_t seed);

// splitmix64: derives independent seeds from one (e.g. one per layer or per step).
uint64_t mix_seed(uint64_t seed, uint64_t stream);

}  // namespace hearth
