#include "core/runtime.h"

#include <malloc.h>

#include "core/threads.h"

namespace hearth {

void init_runtime(int threads) {
  // glibc serves blocks above M_MMAP_THRESHOLD with mmap and unmaps them on free; activations
  // of a few MB are allocated and freed every layer, and each reuse would fault in fresh
  // zeroed pages. Keep them in the heap, and trim only large idle tails.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
  set_num_threads(threads);
}

}  // namespace hearth
