#include "trainer/interruption.h"

#include <utility>

namespace hearth::trainer {
namespace {

// Autograd runs CPU backward functions on the thread that called backward(), so a thread-local
// condition reaches the recomputed blocks and loss tiles of that thread's run.
thread_local std::function<bool()> tl_stop;

}  // namespace

ScopedStopCondition::ScopedStopCondition(std::function<bool()> stop) : previous_(std::move(tl_stop)) {
  tl_stop = std::move(stop);
}

ScopedStopCondition::~ScopedStopCondition() { tl_stop = std::move(previous_); }

bool stop_condition_holds() { return tl_stop && tl_stop(); }

void interruption_point() {
  if (stop_condition_holds()) throw StepInterrupted();
}

}  // namespace hearth::trainer
