// The learning-rate schedule: linear warm-up, then cosine decay to a floor.
#pragma once
#include <cstdint>

namespace hearth::trainer {

struct LrSchedule {
  double peak = 2e-4;
  int64_t warmup = 0;
  int64_t total = 1;
  double floor_ratio = 0.1;  // the last step's rate as a share of the peak

  // The rate of update `step` (0-based).
  double at(int64_t step) const;
};

}  // namespace hearth::trainer
