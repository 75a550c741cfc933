// Test entry point: one thread setting for the whole suite, as the product applies it.
#include <gtest/gtest.h>

#include "core/runtime.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  hearth::init_runtime(0);
  return RUN_ALL_TESTS();
}
