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

void reexec_with_openmp_wait_policy(char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr) return;
  size_t n = 0;
  for (; envp[n] != nullptr; ++n) {
    if (std::strncmp(envp[n], "OMP_WAIT_POLICY=", 16) == 0 || std::strncmp(envp[n], "GOMP_SPINCOUNT=", 15) == 0) return;
  }
  auto** env = static_cast<char**>(std::malloc((n + 2) * sizeof(char*)));
  if (env == nullptr) return;
  std::memcpy(env, envp, n * sizeof(char*));
  static char kPolicy[] = "OMP_WAIT_POLICY=PASSIVE";
  env[n] = kPolicy;
  env[n + 1] = nullptr;
  ::execve("/proc/self/exe", argv, env);
  std::free(env);  // no /proc, or the binary was replaced: carry on with OpenMP's default
}

int num_threads() { return g_threads > 0 ? g_threads : available_cores(); }

}  // namespace hearth
