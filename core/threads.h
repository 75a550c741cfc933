// The one thread setting: applied to LibTorch, OpenMP and the BLAS together so they never
// oversubscribe the cores.
#pragma once

namespace hearth {

// More workers than any machine Hearth targets has cores; a larger count is a typo.
constexpr int kMaxThreads = 1024;

// Sets the worker count for LibTorch intra-op, OpenMP and OpenBLAS. n == 0 means all cores;
// n outside 0..kMaxThreads is refused (kInvalidArgument). Call once at start-up, before any
// parallel work.
void set_num_threads(int n);
// The count to use for a requested one: 0 means all cores; more than the cores available is
// capped to them (a warning says so), since extra workers only wait for a core; negative or
// above kMaxThreads is refused (kInvalidArgument naming `option`, the value and the range).
int resolve_thread_count(int requested, const char* option = "--threads");
// The count set by set_num_threads (all cores if it was never called).
int num_threads();
// Cores available to this process.
int available_cores();

// Gives OpenMP (libgomp) Hearth's wait policy, PASSIVE, unless the environment already names
// one (OMP_WAIT_POLICY or GOMP_SPINCOUNT are respected). A worker that finishes its share
// sleeps at once instead of spinning for ~300k iterations: with another process busy on one of
// the cores, spinning workers keep their cores full, the scheduler never moves the worker that
// shares a core with the other process, and every parallel region waits for its time slice
// (measured: docs/reliability.md, Contention). libgomp reads the setting once, in its own
// initializer, before main() and before any constructor of Hearth's; a setenv() then is too
// late, and even one from .preinit_array is undone by libc's initializer. So when the variable
// is missing this re-executes the program (/proc/self/exe, same argv) with it added to `envp`;
// it returns when nothing needs doing or the exec fails (then OpenMP keeps its default).
// Call it only from an executable's .preinit_array, where it runs before any library's
// initializer (the exec then repeats only the dynamic loading): include
// core/openmp_wait_policy.h in the executable's main file. It uses only C library calls.
void reexec_with_openmp_wait_policy(char** argv, char** envp);

}  // namespace hearth
