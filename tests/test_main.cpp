// Test entry point: one thread setting for the whole suite, as the product applies it.
#include <gtest/gtest.h>

#include "core/threads.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  hearth::set_num_threads(0);
  return RUN_ALL_TESTS();
}
