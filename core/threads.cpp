#include "core/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <omp.h>
#include <sched.h>

#include <thread>

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

void set_num_threads(int n) {
  if (n <= 0) n = available_cores();
  g_threads = n;
  omp_set_num_threads(n);
  at::set_num_threads(n);
  set_blas_threads(n);
}

int num_threads() { return g_threads > 0 ? g_threads : available_cores(); }

}  // namespace hearth
