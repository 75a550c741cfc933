// The one thread setting: applied to LibTorch, OpenMP and the BLAS together so they never
// oversubscribe the cores.
#pragma once

namespace hearth {

// Sets the worker count for LibTorch intra-op, OpenMP and OpenBLAS. n <= 0 means all cores.
// Call once at start-up, before any parallel work.
void set_num_threads(int n);
// The count set by set_num_threads (all cores if it was never called).
int num_threads();
// Cores available to this process.
int available_cores();

}  // namespace hearth
