// Which Hearth this is: the release version, and the kernels this machine runs (the best
// instruction set the CPU and HEARTH_ISA allow), for `hearth --version` and the C API.
#pragma once
#include <string>

namespace hearth::engine {

const char* version();
// "hearth 0.5.0 (kernels avx512-vnni, LibTorch 1.13.1)"
std::string version_line();

}  // namespace hearth::engine
