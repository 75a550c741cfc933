// error_of(f): runs f and returns the hearth::Error it throws, so a test can check its code and
// message; a call that throws none fails the test.
#pragma once
#include <gtest/gtest.h>

#include "core/error.h"

namespace hearth::testing {

template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a hearth::Error";
  return Error(ErrorCode::kInternal, "none");
}

}  // namespace hearth::testing
