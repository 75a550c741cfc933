#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace hearth::trainer {

double LrSchedule::at(int64_t step) const {
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  const int64_t decay_steps = std::max<int64_t>(1, total - warmup - 1);
  const double progress = std::min(1.0, double(step - warmup) / double(decay_steps));
  const double low = peak * floor_ratio;
  return low + 0.5 * (peak - low) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace hearth::trainer
