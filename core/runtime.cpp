#include "core/runtime.h"

#include <malloc.h>

#include <atomic>

#include "core/threads.h"

namespace hearth {
namespace {

std::atomic<MemoryPolicy> g_policy{MemoryPolicy::kReuse};

}  // namespace

void set_memory_policy(MemoryPolicy policy) {
  // glibc serves blocks above M_MMAP_THRESHOLD with mmap and unmaps them on free; the heap
  // below gives memory back only from its top, past M_TRIM_THRESHOLD.
  if (policy == MemoryPolicy::kReuse) {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
  } else {
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    mallopt(M_TOP_PAD, 0);
    malloc_trim(0);
  }
  g_policy = policy;
}

MemoryPolicy memory_policy() { return g_policy; }

void return_free_memory() { malloc_trim(0); }

void init_runtime(int threads) {
  set_memory_policy(MemoryPolicy::kReuse);
  set_num_threads(resolve_thread_count(threads));
}

}  // namespace hearth
