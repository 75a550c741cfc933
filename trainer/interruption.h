// Stopping a run at the right moment: a stop condition (a signal, an app's cancel flag, the end
// of a job's time slice) checked between steps and at interruption points inside a step, where a
// long step (a large model's forward and backward take many seconds) is abandoned.
#pragma once
#include <exception>
#include <functional>

namespace hearth::trainer {

// Thrown at an interruption point while this thread's stop condition holds. The trainer catches
// it, discards the partial step (gradients, random draws) and checkpoints the last whole one.
class StepInterrupted : public std::exception {
 public:
  const char* what() const noexcept override { return "the training step was interrupted by a stop request"; }
};

// Makes `stop` this thread's stop condition for the object's lifetime (the previous one comes
// back afterwards). The condition must be cheap: it runs at every interruption point.
class ScopedStopCondition {
 public:
  explicit ScopedStopCondition(std::function<bool()> stop);
  ~ScopedStopCondition();
  ScopedStopCondition(const ScopedStopCondition&) = delete;
  ScopedStopCondition& operator=(const ScopedStopCondition&) = delete;

 private:
  std::function<bool()> previous_;
};

// Whether this thread's stop condition holds (false when none is set).
bool stop_condition_holds();

// Throws StepInterrupted if the stop condition holds. Called between decoder blocks, loss tiles
// and recomputed blocks; never inside a parallel region.
void interruption_point();

}  // namespace hearth::trainer
