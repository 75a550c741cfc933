// The caller-only windows of the worker pool, on a clock the test sets: exact, no sleeping.
#include <gtest/gtest.h>

#include "core/stall_windows.h"

namespace hearth {
namespace {

using std::chrono::milliseconds;
using Clock = StallWindows::Clock;

TEST(StallWindows, OneStallAloneOpensNoWindow) {
  StallWindows w;
  const Clock::time_point t0{};
  w.note_stall(t0 + milliseconds(1000));
  EXPECT_FALSE(w.caller_only(t0 + milliseconds(1001)));
  // Quiet machines stall every ~0.4 s: two stalls further apart than the pair interval never open one.
  w.note_stall(t0 + milliseconds(1400));
  EXPECT_FALSE(w.caller_only(t0 + milliseconds(1401)));
}

TEST(StallWindows, ASecondStallSoonAfterOpensTheFirstWindow) {
  StallWindows w;
  const Clock::time_point t0{};
  w.note_stall(t0 + milliseconds(1000));
  w.note_stall(t0 + milliseconds(1030));
  EXPECT_TRUE(w.caller_only(t0 + milliseconds(1031)));
  EXPECT_TRUE(w.caller_only(t0 + milliseconds(1049)));
  EXPECT_FALSE(w.caller_only(t0 + milliseconds(1051))) << "the first window lasts 20 ms";
}

TEST(StallWindows, WindowsDoubleWhileStallsKeepComingUpToTheCap) {
  StallWindows w;
  Clock::time_point now{milliseconds(1000)};
  for (int64_t expected_ms : {20, 40, 80, 160, 320, 640, 640}) {
    w.note_stall(now);
    w.note_stall(now + milliseconds(1));
    now += milliseconds(1);
    EXPECT_TRUE(w.caller_only(now + milliseconds(expected_ms - 1))) << expected_ms;
    EXPECT_FALSE(w.caller_only(now + milliseconds(expected_ms + 1))) << expected_ms;
    now += milliseconds(expected_ms + 5);  // back on all threads, and stalled again soon
  }
}

TEST(StallWindows, ACleanStretchStartsOverAtTheFirstWindow) {
  StallWindows w;
  Clock::time_point now{milliseconds(1000)};
  for (int i = 0; i < 3; ++i) {  // windows of 20, 40, 80 ms
    w.note_stall(now);
    w.note_stall(now + milliseconds(1));
    now += milliseconds(200);
    ASSERT_FALSE(w.caller_only(now));
  }
  now += milliseconds(250);  // 250 ms without a stall on all threads
  EXPECT_FALSE(w.caller_only(now));
  w.note_stall(now);
  w.note_stall(now + milliseconds(1));
  EXPECT_TRUE(w.caller_only(now + milliseconds(20)));
  EXPECT_FALSE(w.caller_only(now + milliseconds(22))) << "after a clean stretch the window is 20 ms again";
}

TEST(StallWindows, TheStallThatOpensAWindowDoesNotCountTowardsTheNext) {
  StallWindows w;
  const Clock::time_point t0{milliseconds(1000)};
  w.note_stall(t0);
  w.note_stall(t0 + milliseconds(1));  // opens [1, 21) ms
  EXPECT_FALSE(w.caller_only(t0 + milliseconds(22)));
  w.note_stall(t0 + milliseconds(23));  // one stall after the window: no pair yet
  EXPECT_FALSE(w.caller_only(t0 + milliseconds(24)));
}

}  // namespace
}  // namespace hearth
