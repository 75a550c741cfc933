// Include in exactly one source file of an executable (the one with main): it runs
// reexec_with_runtime_environment (core/threads.h) from the executable's .preinit_array, which
// glibc calls before any shared library's initializer (libgomp's and OpenBLAS's included). A
// shared library cannot do this; its host process sets the variables itself (docs/performance.md).
#pragma once
#include "core/threads.h"

namespace hearth::detail {

static void preinit_runtime_environment(int, char** argv, char** envp) { reexec_with_runtime_environment(argv, envp); }

[[gnu::used, gnu::section(".preinit_array")]] static void (*const preinit_runtime_environment_entry)(int, char**, char**) =
    preinit_runtime_environment;

}  // namespace hearth::detail
