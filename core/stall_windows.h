// When a worker pool should run phases on its calling thread alone. A task a worker has started
// can only be finished by that worker: when another process holds the worker's core, the caller
// waits a scheduler slice for it (~1 ms, where a decode step's phases take tens of
// microseconds). After such stalls the caller does better alone (it then has a core to itself
// beside the other process) for a while, and tries its workers again after that.
#pragma once
#include <chrono>

namespace hearth {

class StallWindows {
 public:
  using Clock = std::chrono::steady_clock;

  // Whether a phase starting at `now` runs on the caller alone.
  bool caller_only(Clock::time_point now);
  // The caller waited for a worker's task far past a task's length, up to `now`.
  void note_stall(Clock::time_point now);

  // A machine with nothing else running stalls too, now and then (page faults, the hypervisor:
  // seen every ~0.4 s, 0.4-1.2 ms each): only a second stall within kStallPair opens a window.
  static constexpr auto kStallPair = std::chrono::milliseconds(50);
  // The first window; each pair of stalls within kCleanStretch of the last window's end doubles
  // it up to kMaxWindow (the other process is still there); a clean stretch starts over.
  static constexpr auto kFirstWindow = std::chrono::milliseconds(20);
  static constexpr auto kMaxWindow = std::chrono::milliseconds(640);
  static constexpr auto kCleanStretch = std::chrono::milliseconds(200);

 private:
  Clock::time_point caller_only_until_{};
  Clock::duration last_window_{};  // zero: no window since the last clean stretch
  Clock::time_point last_stall_ = Clock::time_point::min();
};

}  // namespace hearth
