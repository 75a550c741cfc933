// Range checks for options and file fields: every numeric value Hearth accepts has bounds, and
// a value outside them is refused with one error naming it, the value given and the range.
#pragma once
#include <cstdint>
#include <string>

namespace hearth {

// "NAME must be an integer in LO..HI, got VALUE" (kInvalidArgument) unless lo <= value <= hi.
void require_integer_in_range(const std::string& name, int64_t value, int64_t lo, int64_t hi);

// Whether each end of a real interval is included.
enum class Bound { kClosed, kOpen };

// "NAME must be a finite number in [LO, HI], got VALUE" (or with open ends), also for NaN and
// infinities, unless the value lies in the interval.
void require_number_in_range(const std::string& name, double value, double lo, double hi, Bound lo_bound = Bound::kClosed,
                      Bound hi_bound = Bound::kClosed);

// The same checks returning the message instead of throwing: "" when the value is in range.
std::string integer_range_problem(const std::string& name, int64_t value, int64_t lo, int64_t hi);
std::string number_range_problem(const std::string& name, double value, double lo, double hi, Bound lo_bound = Bound::kClosed,
                          Bound hi_bound = Bound::kClosed);

// A number as a person would type it: 0.0002, 1e+38, inf, nan.
std::string format_number(double value);

}  // namespace hearth
