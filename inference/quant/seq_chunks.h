// The int8-activation kernels take what is left of a batched step's sequences (after the passes
// of eight) up to four at a time, as a compile-time count, so each chunk's accumulators can live in
// registers.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace hearth {

// Calls run(std::integral_constant<int, n>{}, first) for consecutive chunks [first, first + n)
// of [0, seqs), n <= 4.
template <typename Run>
inline void for_seq_chunks(int64_t seqs, Run&& run) {
  for (int64_t s = 0; s < seqs; s += 4) {
    switch (std::min<int64_t>(4, seqs - s)) {
      case 1: run(std::integral_constant<int, 1>{}, s); break;
      case 2: run(std::integral_constant<int, 2>{}, s); break;
      case 3: run(std::integral_constant<int, 3>{}, s); break;
      default: run(std::integral_constant<int, 4>{}, s); break;
    }
  }
}

}  // namespace hearth
