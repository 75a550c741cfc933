// Include in exactly one source file of an executable (the one with main): it runs
// reexec_with_openmp_wait_policy (core/threads.h) from the executable's .preinit_array, which
// glibc calls before any shared library's initializer, libgomp's included. A shared library
// cannot do this; its host process sets OMP_WAIT_POLICY itself.
#pragma once
#include "core/threads.h"

namespace hearth::detail {

static void preinit_openmp_wait_policy(int, char** argv, char** envp) { reexec_with_openmp_wait_policy(argv, envp); }

[[gnu::used, gnu::section(".preinit_array")]] static void (*const preinit_openmp_wait_policy_entry)(int, char**, char**) =
    preinit_openmp_wait_policy;

}  // namespace hearth::detail
