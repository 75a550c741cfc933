// The memory policy switch: a scoped policy is in force for its lifetime and the previous one
// comes back after it. (What the policies do to peak RSS is measured by bench_train.)
#include <gtest/gtest.h>

#include "core/runtime.h"

namespace hearth {
namespace {

TEST(Runtime, ScopedPolicyRestoresThePreviousOne) {
  set_memory_policy(MemoryPolicy::kReuse);
  {
    ScopedMemoryPolicy bounded(MemoryPolicy::kBounded);
    EXPECT_EQ(memory_policy(), MemoryPolicy::kBounded);
  }
  EXPECT_EQ(memory_policy(), MemoryPolicy::kReuse);
}

}  // namespace
}  // namespace hearth
