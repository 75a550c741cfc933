// The one dispatch point: picks the best kernel set the CPU supports (and HEARTH_ISA allows),
// unless a test forced one.
#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "inference/quant/quant_kernels.h"

namespace hearth {
namespace {

std::atomic<int> g_forced{static_cast<int>(KernelIsa::kAuto)};

// F16C is CPUID leaf 1, ECX bit 29, read directly: clang's __builtin_cpu_supports does not know
// "f16c" (GCC's does), and the sanitizer build is compiled with clang.
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

bool hardware_supports(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma") && cpu_has_f16c();
    case KernelIsa::kAvx512Vnni:
      return hardware_supports(KernelIsa::kAvx512) && __builtin_cpu_supports("avx512vnni");
    case KernelIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    default: return true;
  }
}

// HEARTH_ISA caps the instruction sets this process uses, so one machine can run what an older
// one would (the tests' forced-portable and AVX2 passes). Unset: no cap.
KernelIsa isa_cap() {
  static const KernelIsa cap = [] {
    const char* env = std::getenv("HEARTH_ISA");
    if (env == nullptr || *env == '\0') return KernelIsa::kAvx512Vnni;
    for (KernelIsa isa : {KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kAvx512, KernelIsa::kAvx512Vnni})
      if (std::strcmp(env, kernel_isa_name(isa)) == 0) return isa;
    if (std::strcmp(env, "portable") == 0) return KernelIsa::kScalar;
    fail(ErrorCode::kInvalidArgument, std::string("HEARTH_ISA=") + env +
                                          " is not an instruction set Hearth knows; use scalar (or portable), avx2, avx512 "
                                          "or avx512-vnni, or unset it");
  }();
  return cap;
}

}  // namespace

bool cpu_supports_isa(KernelIsa isa) {
  return isa == KernelIsa::kAuto || (hardware_supports(isa) && static_cast<int>(isa) <= static_cast<int>(isa_cap()));
}

KernelIsa best_available_isa() {
  static const KernelIsa best = cpu_supports_isa(KernelIsa::kAvx512Vnni) ? KernelIsa::kAvx512Vnni
                                : cpu_supports_isa(KernelIsa::kAvx512) ? KernelIsa::kAvx512
                                : cpu_supports_isa(KernelIsa::kAvx2)  ? KernelIsa::kAvx2
                                                                      : KernelIsa::kScalar;
  return best;
}

const QuantKernelSet& kernels_for(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512Vnni: return avx512_vnni_kernels();
    case KernelIsa::kAvx512: return avx512_kernels();
    case KernelIsa::kAvx2: return avx2_kernels();
    default: return scalar_kernels();
  }
}

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAuto: return "auto";
    case KernelIsa::kScalar: return "scalar";
    case KernelIsa::kAvx2: return "avx2";
    case KernelIsa::kAvx512: return "avx512";
    case KernelIsa::kAvx512Vnni: return "avx512-vnni";
  }
  return "invalid";
}

void force_kernel_isa(KernelIsa isa) {
  require(cpu_supports_isa(isa), ErrorCode::kUnsupported,
          std::string("this CPU cannot run the ") + kernel_isa_name(isa) + " quantized kernels");
  g_forced.store(static_cast<int>(isa));
}

const QuantKernelSet& active_kernels() {
  const auto forced = static_cast<KernelIsa>(g_forced.load());
  return kernels_for(forced == KernelIsa::kAuto ? best_available_isa() : forced);
}

}  // namespace hearth
