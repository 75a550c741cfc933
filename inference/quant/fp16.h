// IEEE half <-> float conversion for the fp16 group scales, without pulling in LibTorch
// headers (the ISA-specific kernel files are compiled without the precompiled header).
#pragma once
#include <cstdint>

namespace hearth {

// Round-to-nearest-even float -> half bits; values beyond the half range saturate to +-65504.
uint16_t float_to_fp16(float f);
float fp16_to_float(uint16_t h);

}  // namespace hearth
