// Process-wide runtime settings applied once at start-up by every entry point (CLI, C API,
// tests, benchmarks): the thread count and the memory allocator's reuse policy.
#pragma once

namespace hearth {

// Sets threads (see threads.h) and makes freed tensor memory stay in the heap for reuse
// instead of going back to the kernel, so each forward pass does not page-fault its
// activations in again.
void init_runtime(int threads);

}  // namespace hearth
