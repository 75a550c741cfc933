// A decoder as an autograd context's integer: contexts hold IValues only, and the decoder
// outlives every graph built over it.
#pragma once
#include <cstdint>

#include "inference/decoder.h"

namespace hearth::trainer {

inline int64_t as_handle(const Decoder& d) { return reinterpret_cast<int64_t>(&d); }
inline const Decoder& from_handle(int64_t h) { return *reinterpret_cast<const Decoder*>(h); }

}  // namespace hearth::trainer
