// Test entry point: one thread setting for the whole suite, as the product applies it.
#include <gtest/gtest.h>

#include "core/openmp_wait_policy.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // One thread per test process: ctest runs suites side by side on the 2 cores, and
  // oversubscribed OpenMP threads spin against each other. Kernel tests set 2 themselves.
  hearth::init_runtime(1);
  return RUN_ALL_TESTS();
}
