#include "core/worker_pool.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/threads.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HEARTH_CPU_RELAX() _mm_pause()
#else
#define HEARTH_CPU_RELAX() std::this_thread::yield()
#endif

namespace hearth {
namespace {

constexpr int kIndexBits = 20;
constexpr uint64_t kIndexMask = (uint64_t(1) << kIndexBits) - 1;

uint64_t phase_of(uint64_t w) { return w >> (2 * kIndexBits); }
int64_t count_of(uint64_t w) { return static_cast<int64_t>((w >> kIndexBits) & kIndexMask); }
int64_t next_of(uint64_t w) { return static_cast<int64_t>(w & kIndexMask); }
uint64_t pack(uint64_t phase, int64_t count) { return (phase << (2 * kIndexBits)) | (uint64_t(count) << kIndexBits); }

// How long an idle worker polls for the next phase before it sleeps. Phases of one decode step
// follow each other within microseconds; between tokens (sampling, detokenizing) the gap is
// ~0.1 ms. Longer spinning would only burn a core that a phone's other processes want.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(150);

// A stall: the caller, done with its own tasks, waited longer than this and than kStallTasks of
// its own tasks' mean length. A worker merely late to wake, or finishing a long task, waits less;
// a worker descheduled mid-task waits out another process's slice (0.75-3 ms).
constexpr auto kStallMin = std::chrono::microseconds(300);
constexpr int64_t kStallTasks = 4;

}  // namespace

WorkerPool::WorkerPool(int threads) {
  require(threads >= 1 && threads <= kMaxThreads, ErrorCode::kInvalidArgument,
          "a worker pool needs 1.." + std::to_string(kMaxThreads) + " threads, not " + std::to_string(threads));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void WorkerPool::run(int64_t tasks, TaskFn task, void* context) {
  if (tasks <= 0) return;
  require(tasks <= kMaxTasks, ErrorCode::kInternal, "a worker pool phase has too many tasks");
  std::lock_guard<std::mutex> one_phase(run_mutex_);
  const auto start = std::chrono::steady_clock::now();
  if (workers_.empty() || tasks == 1 || stall_windows_.caller_only(start)) {
    for (int64_t i = 0; i < tasks; ++i) task(context, i);
    return;
  }
  task_.store(task, std::memory_order_relaxed);
  context_.store(context, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  const uint64_t phase = phase_of(claim_.load(std::memory_order_relaxed)) + 1;
  claim_.store(pack(phase, tasks));  // seq_cst: ordered before the sleepers_ read below
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    wake_.notify_all();
  }
  const int64_t done = drain();
  wait_for_workers(tasks, done, std::chrono::steady_clock::now() - start);
}

void WorkerPool::wait_for_workers(int64_t tasks, int64_t done, std::chrono::steady_clock::duration caller_time) {
  // Tasks a worker claimed may still run; a worker that never woke claimed none.
  if (finished_.load(std::memory_order_acquire) + done >= tasks) return;
  const auto waiting_since = std::chrono::steady_clock::now();
  const auto stall_after = std::max<std::chrono::steady_clock::duration>(kStallMin, kStallTasks * caller_time / std::max<int64_t>(done, 1));
  for (int spins = 0; finished_.load(std::memory_order_acquire) + done < tasks; ++spins) {
    if (spins < 256) {
      HEARTH_CPU_RELAX();
    } else {
      std::this_thread::yield();  // the worker may share this core with another process
    }
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - waiting_since > stall_after) {
    stalls_.fetch_add(1, std::memory_order_relaxed);
    stall_windows_.note_stall(now);
  }
}

int64_t WorkerPool::drain() {
  int64_t ran = 0;
  uint64_t w = claim_.load(std::memory_order_acquire);
  while (next_of(w) < count_of(w)) {
    if (!claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // The claim succeeded, so the phase is still the one whose task and context were published
    // before its claim word: they cannot change until this task is counted as finished.
    task_.load(std::memory_order_relaxed)(context_.load(std::memory_order_relaxed), next_of(w));
    ++ran;
    w = claim_.load(std::memory_order_acquire);
  }
  return ran;
}

bool WorkerPool::wait_for_phase(uint64_t seen_phase) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinBeforeSleep;
  for (int i = 0;; ++i) {
    if (phase_of(claim_.load(std::memory_order_acquire)) != seen_phase) return true;
    if (stopping_.load(std::memory_order_relaxed)) return false;
    if ((i & 255) == 255) {
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::yield();  // a caller descheduled on this core can publish its phase
    } else {
      HEARTH_CPU_RELAX();
    }
  }
  sleepers_.fetch_add(1);  // seq_cst: ordered before the claim word read under the lock
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait(lock, [&] { return stopping_.load() || phase_of(claim_.load()) != seen_phase; });
  sleepers_.fetch_sub(1);
  return !stopping_.load();
}

void WorkerPool::worker_loop() {
  uint64_t seen = 0;
  while (wait_for_phase(seen)) {
    seen = phase_of(claim_.load(std::memory_order_acquire));
    const int64_t ran = drain();
    if (ran > 0) finished_.fetch_add(ran, std::memory_order_release);
  }
}

WorkerPool& decode_worker_pool() {
  static WorkerPool pool(num_threads());
  return pool;
}

}  // namespace hearth
