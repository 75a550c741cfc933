// The persistent worker pool of the decode step (core/worker_pool.h): every task once, callers
// taking turns, sleeping workers woken, and caller-only windows after a worker's stalls.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/worker_pool.h"

namespace hearth {
namespace {

TEST(WorkerPool, RunsEveryTaskExactlyOnceAcrossManyPhases) {
  for (int threads : {1, 2, 4}) {
    WorkerPool pool(threads);
    for (int64_t tasks : {1, 2, 3, 17, 300}) {
      std::vector<std::atomic<int>> runs(tasks);
      for (int phase = 0; phase < 200; ++phase) pool.for_each(tasks, [&](int64_t i) { runs[i].fetch_add(1); });
      for (int64_t i = 0; i < tasks; ++i) ASSERT_EQ(runs[i].load(), 200) << threads << " threads, task " << i;
    }
  }
}

TEST(WorkerPool, PhasesOfTwoCallingThreadsTakeTurns) {
  // Two generations on two app threads share the process's pool.
  WorkerPool pool(2);
  std::vector<std::atomic<int>> runs_a(50), runs_b(70);
  auto caller = [&](std::vector<std::atomic<int>>& runs) {
    for (int phase = 0; phase < 300; ++phase)
      pool.for_each(int64_t(runs.size()), [&](int64_t i) { runs[i].fetch_add(1); });
  };
  std::thread a(caller, std::ref(runs_a)), b(caller, std::ref(runs_b));
  a.join();
  b.join();
  for (auto& r : runs_a) ASSERT_EQ(r.load(), 300);
  for (auto& r : runs_b) ASSERT_EQ(r.load(), 300);
}

TEST(WorkerPool, WakesSleepingWorkersAndSpreadsTheWork) {
  for (int round = 0; round < 3; ++round) {
    // A pool per round: on a loaded machine a round may find its worker descheduled, and the
    // caller-only window that follows (the next test) would keep the next round off the worker.
    WorkerPool pool(2);
    // Longer than the workers' spin, so each round starts with them asleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> on_caller{0}, total{0};
    const auto caller = std::this_thread::get_id();
    // Tasks that each take a while, so a woken worker has time to claim some.
    pool.for_each(64, [&](int64_t) {
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      total.fetch_add(1);
      if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
    });
    EXPECT_EQ(total.load(), 64);
    EXPECT_LT(on_caller.load(), 64) << "the worker never woke up in round " << round;
  }
}

// A worker that stops mid-task (descheduled: here it sleeps 20 ms, tasks take 0.1 ms) makes the
// caller wait: the pool counts a stall. After two such phases the pool runs the next phase on the
// caller alone, and once the window is over spreads the work again (the windows' timing is
// stall_windows_test's; on a loaded machine more stalls make the window longer, so the test
// waits for the spread phase for up to two seconds).
TEST(WorkerPool, AfterWorkersStallTheCallerRunsPhasesAloneForAWhile) {
  WorkerPool pool(2);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> on_caller{0};
  auto count_caller = [&](int64_t) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
  };
  for (int i = 0; i < 2; ++i) {
    std::atomic<bool> worker_took_one{false};
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    pool.for_each(16, [&](int64_t t) {
      if (std::this_thread::get_id() != caller) {
        if (!worker_took_one.exchange(true)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return;
      }
      // A sleeping worker can take milliseconds to wake on a loaded machine (CI runs suites side
      // by side): the caller's tasks hold until it has taken one, so the phase always has a stall.
      while (!worker_took_one.load() && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      count_caller(t);
    });
    ASSERT_TRUE(worker_took_one.load()) << "the worker never took a task";
  }
  EXPECT_GE(pool.stalls(), 2);
  on_caller = 0;
  pool.for_each(8, count_caller);
  EXPECT_EQ(on_caller.load(), 8) << "a phase right after the stalls should stay on the caller";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    on_caller = 0;
    pool.for_each(64, count_caller);
  } while (on_caller.load() == 64 && std::chrono::steady_clock::now() < give_up);
  EXPECT_LT(on_caller.load(), 64) << "the window should end and the worker take tasks again";
}

TEST(WorkerPool, RefusesAnAbsurdThreadCount) {
  EXPECT_THROW(WorkerPool(0), Error);
  EXPECT_THROW(WorkerPool(100000), Error);
}

}  // namespace
}  // namespace hearth
