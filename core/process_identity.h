// Naming a process so that another one can later tell whether it still runs: its pid and its
// start time (a pid alone is reused by the system after the process dies).
#pragma once
#include <cstdint>

namespace hearth {

struct ProcessIdentity {
  int64_t pid = 0;
  int64_t start_ticks = 0;  // field 22 of /proc/<pid>/stat: clock ticks after boot

  static ProcessIdentity current();
  // Whether that very process still runs (same pid and the same start time).
  bool alive() const;
};

}  // namespace hearth
