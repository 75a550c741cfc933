#include "core/stall_windows.h"

#include <algorithm>

namespace hearth {

bool StallWindows::caller_only(Clock::time_point now) {
  if (now < caller_only_until_) return true;
  if (last_window_ != Clock::duration::zero() && now - caller_only_until_ > kCleanStretch) last_window_ = Clock::duration::zero();
  return false;
}

void StallWindows::note_stall(Clock::time_point now) {
  const bool paired = last_stall_ != Clock::time_point::min() && now - last_stall_ < kStallPair;
  last_stall_ = now;
  if (!paired) return;
  last_window_ = last_window_ == Clock::duration::zero() ? Clock::duration(kFirstWindow)
                                                         : std::min<Clock::duration>(2 * last_window_, kMaxWindow);
  caller_only_until_ = now + last_window_;
  last_stall_ = Clock::time_point::min();  // the next window needs a pair of its own
}

}  // namespace hearth
