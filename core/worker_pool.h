// A persistent pool of worker threads for the decode step's many small parallel phases. An
// OpenMP region or at::parallel_for per phase costs a fork-join each (a decode step of a 30-layer
// model has ~150 phases); here the workers stay alive, take the phase's tasks from one shared
// atomic counter, spin briefly between phases and then sleep, so a phone's busy core costs a
// late worker's share only: whoever is running takes the tasks it has not started.
// When a worker is descheduled mid-task the pool runs phases on the caller alone for a while
// (core/stall_windows.h).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/stall_windows.h"

namespace hearth {

class WorkerPool {
 public:
  // Runs task(context, index) for one index of a phase; called from any of the pool's threads.
  using TaskFn = void (*)(void* context, int64_t index);

  // `threads` counts the caller: a pool of 1 runs everything on the calling thread.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Stalls seen so far (phases that waited for a descheduled worker); for tests and benchmarks.
  int64_t stalls() const { return stalls_.load(std::memory_order_relaxed); }
  // Runs task(context, i) once for every i in [0, tasks) and returns when all have finished.
  // The calling thread takes tasks too. Phases of several callers (two generations on two app
  // threads) take turns; a task must not start a phase itself (that would deadlock), nor throw.
  void run(int64_t tasks, TaskFn task, void* context);
  // Convenience for a callable f(index): the callable lives on the caller's stack for the call.
  template <typename F>
  void for_each(int64_t tasks, const F& f) {
    run(tasks, [](void* c, int64_t i) { (*static_cast<const F*>(c))(i); }, const_cast<F*>(&f));
  }

  // Tasks per phase are limited by the packed claim word.
  static constexpr int64_t kMaxTasks = (int64_t(1) << 20) - 1;

 private:
  void worker_loop();
  // Claims and runs tasks of the current phase until none is left; returns how many it ran.
  int64_t drain();
  bool wait_for_phase(uint64_t seen_phase);
  // Waits until every task of a phase of `tasks` has finished, `done` of them on the caller in
  // `caller_time`; a wait far past a task's length is a stall (counted, and told to stall_windows_).
  void wait_for_workers(int64_t tasks, int64_t done, std::chrono::steady_clock::duration caller_time);

  // phase (bits 40..63) | task count (bits 20..39) | next unclaimed index (bits 0..19): one word,
  // so a claim can never take an index of a phase whose task and context it did not read.
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> finished_{0};
  std::atomic<TaskFn> task_{nullptr};
  std::atomic<void*> context_{nullptr};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex run_mutex_;  // one phase at a time
  std::mutex mutex_;      // the sleepers' condition variable
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  StallWindows stall_windows_;  // guarded by run_mutex_
  std::atomic<int64_t> stalls_{0};
};

// The process's decode pool, sized once from num_threads() (core/threads.h) on first use.
WorkerPool& decode_worker_pool();

}  // namespace hearth
