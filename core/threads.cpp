#include "core/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <omp.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/range_check.h"

namespace hearth {
namespace {

int g_threads = 0;

// OpenBLAS is reached through libblas.so.3 whichever BLAS is installed, so look its
// setter up at run time rather than link against one implementation.
void set_blas_threads(int n) {
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "goto_set_num_threads"))) fn(n);
}

}  // namespace

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int resolve_thread_count(int requested, const char* option) {
  require_integer_in_range(std::string(option) + " (0 = all cores)", requested, 0, kMaxThreads);
  const int cores = available_cores();
  if (requested == 0) return cores;
  if (requested > cores) {
    spdlog::warn("{} {} is more than the {} core(s) available; using {}", option, requested, cores, cores);
    return cores;
  }
  return requested;
}

void set_num_threads(int n) {
  require_integer_in_range("thread count (0 = all cores)", n, 0, kMaxThreads);
  if (n == 0) n = available_cores();
  g_threads = n;
  omp_set_num_threads(n);
  at::set_num_threads(n);
  set_blas_threads(n);
}

namespace {

bool has_variable(char** envp, const char* name_eq) {
  for (size_t i = 0; envp[i] != nullptr; ++i)
    if (std::strncmp(envp[i], name_eq, std::strlen(name_eq)) == 0) return true;
  return false;
}

// OpenBLAS's kernel family for this CPU, or null to leave its own detection alone.
char* openblas_coretype_setting() {
  static char skylakex[] = "OPENBLAS_CORETYPE=SkylakeX";
  static char haswell[] = "OPENBLAS_CORETYPE=Haswell";
  __builtin_cpu_init();  // before any constructor: the CPU checks are not initialized yet
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return skylakex;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return haswell;
  return nullptr;
}

}  // namespace

void reexec_with_runtime_environment(char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr) return;
  static char kPolicy[] = "OMP_WAIT_POLICY=PASSIVE";
  char* additions[2] = {nullptr, nullptr};
  size_t added = 0;
  if (!has_variable(envp, "OMP_WAIT_POLICY=") && !has_variable(envp, "GOMP_SPINCOUNT=")) additions[added++] = kPolicy;
  if (!has_variable(envp, "OPENBLAS_CORETYPE=") && !has_variable(envp, "HEARTH_ISA=")) {
    if (char* coretype = openblas_coretype_setting()) additions[added++] = coretype;
  }
  if (added == 0) return;
  size_t n = 0;
  while (envp[n] != nullptr) ++n;
  auto** env = static_cast<char**>(std::malloc((n + added + 1) * sizeof(char*)));
  if (env == nullptr) return;
  std::memcpy(env, envp, n * sizeof(char*));
  for (size_t i = 0; i < added; ++i) env[n + i] = additions[i];
  env[n + added] = nullptr;
  ::execve("/proc/self/exe", argv, env);
  std::free(env);  // no /proc, or the binary was replaced: carry on with the libraries' defaults
}

int num_threads() { return g_threads > 0 ? g_threads : available_cores(); }

}  // namespace hearth
