#include "engine/version.h"

#include <torch/version.h>  // TORCH_VERSION

#include "inference/quant/quant_kernels.h"

namespace hearth::engine {

const char* version() { return HEARTH_VERSION; }

std::string version_line() {
  return std::string("hearth ") + HEARTH_VERSION + " (kernels " + kernel_isa_name(best_available_isa()) + ", LibTorch " +
         TORCH_VERSION + ")";
}

}  // namespace hearth::engine
