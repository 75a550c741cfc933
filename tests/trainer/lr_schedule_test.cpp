// The warm-up + cosine schedule at its landmarks.
#include <gtest/gtest.h>

#include "trainer/lr_schedule.h"

namespace hearth {
namespace {

TEST(LrSchedule, WarmsUpLinearlyThenDecaysToTheFloor) {
  trainer::LrSchedule s{1.0, 4, 15, 0.1};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);  // halfway through the decay
  EXPECT_NEAR(s.at(14), 0.1, 1e-12);
  for (int i = 4; i < 14; ++i) EXPECT_GE(s.at(i), s.at(i + 1));
}

}  // namespace
}  // namespace hearth
