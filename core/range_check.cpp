#include "core/range_check.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace hearth {

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", value);
  return buf;
}

std::string integer_range_problem(const std::string& name, int64_t value, int64_t lo, int64_t hi) {
  if (value >= lo && value <= hi) return {};
  return name + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
         std::to_string(value);
}

std::string number_range_problem(const std::string& name, double value, double lo, double hi, Bound lo_bound, Bound hi_bound) {
  const bool above_lo = lo_bound == Bound::kOpen ? value > lo : value >= lo;
  const bool below_hi = hi_bound == Bound::kOpen ? value < hi : value <= hi;
  if (std::isfinite(value) && above_lo && below_hi) return {};
  return name + " must be a finite number in " + (lo_bound == Bound::kOpen ? "(" : "[") + format_number(lo) + ", " +
         format_number(hi) + (hi_bound == Bound::kOpen ? ")" : "]") + ", got " + format_number(value);
}

void require_integer_in_range(const std::string& name, int64_t value, int64_t lo, int64_t hi) {
  std::string problem = integer_range_problem(name, value, lo, hi);
  if (!problem.empty()) fail(ErrorCode::kInvalidArgument, problem);
}

void require_number_in_range(const std::string& name, double value, double lo, double hi, Bound lo_bound, Bound hi_bound) {
  std::string problem = number_range_problem(name, value, lo, hi, lo_bound, hi_bound);
  if (!problem.empty()) fail(ErrorCode::kInvalidArgument, problem);
}

}  // namespace hearth
