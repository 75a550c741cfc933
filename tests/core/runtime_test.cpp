// The memory policy switch: a scoped policy is in force for its lifetime and the previous one
// comes back after it (what the policies do to peak RSS is measured by bench_train); the thread
// count: 0 is all cores, more than the cores is capped to them, negative or absurd is refused.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/runtime.h"
#include "core/threads.h"

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

TEST(Runtime, ThreadCountsAreResolvedWithinTheCores) {
  const int cores = available_cores();
  EXPECT_EQ(resolve_thread_count(0), cores);
  EXPECT_EQ(resolve_thread_count(1), 1);
  EXPECT_EQ(resolve_thread_count(cores), cores);
  EXPECT_EQ(resolve_thread_count(cores + 7), cores);  // capped, with a warning
  for (int bad : {-1, kMaxThreads + 1, 1 << 30}) {
    try {
      resolve_thread_count(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("--threads"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(set_num_threads(-3), Error);
}

}  // namespace
}  // namespace hearth
