// Tail averaging: after a run, the parameters are the mean of the values they held after each
// of the run's last updates, compared with a double-precision mean of the same values.
#include <gtest/gtest.h>

#include "core/error.h"
#include "trainer/tail_average.h"

namespace hearth {
namespace {

// Runs `steps` pretend updates (each adds fresh noise) and returns, per step, what the
// parameters held after it, in double precision.
std::vector<std::vector<at::Tensor>> run(std::vector<at::Tensor>& params, trainer::TailAverage& average, int64_t steps) {
  std::vector<std::vector<at::Tensor>> history;
  for (int64_t step = 0; step < steps; ++step) {
    for (at::Tensor& p : params) p.add_(at::randn_like(p));
    history.push_back({});
    for (const at::Tensor& p : params) history.back().push_back(p.to(at::kDouble));
    average.after_update(step, params);
  }
  return history;
}

TEST(TailAverage, ParametersBecomeTheMeanOfTheLastUpdates) {
  std::vector<at::Tensor> params = {at::randn({7, 5}), at::randn({3})};
  trainer::TailAverage average(10, 0.3);
  EXPECT_EQ(average.first_averaged_step(), 7);
  const auto history = run(params, average, 10);
  average.apply(params);
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor expected = (history[7][i] + history[8][i] + history[9][i]) / 3.0;
    // fp32 sums of three values of order 10: rounding is ~1e-6 relative; 1e-5 absolute leaves
    // room for that and fails on any other mix of steps (they differ by order 1).
    EXPECT_TRUE(at::allclose(params[i].to(at::kDouble), expected, 0, 1e-5)) << "parameter " << i;
  }
}

TEST(TailAverage, NoShareLeavesTheLastWeights) {
  std::vector<at::Tensor> params = {at::randn({4, 4})};
  trainer::TailAverage average(5, 0.0);
  const auto history = run(params, average, 5);
  average.apply(params);
  EXPECT_TRUE(at::equal(params[0].to(at::kDouble), history[4][0]));
}

TEST(TailAverage, TheWholeRunAveragesEveryUpdate) {
  std::vector<at::Tensor> params = {at::randn({6})};
  trainer::TailAverage average(4, 1.0);
  const auto history = run(params, average, 4);
  average.apply(params);
  const at::Tensor expected = (history[0][0] + history[1][0] + history[2][0] + history[3][0]) / 4.0;
  EXPECT_TRUE(at::allclose(params[0].to(at::kDouble), expected, 0, 1e-5));
}

TEST(TailAverage, SharesOutsideZeroToOneAreRefused) {
  EXPECT_THROW(trainer::TailAverage(10, -0.1), Error);
  EXPECT_THROW(trainer::TailAverage(10, 1.01), Error);
  EXPECT_THROW(trainer::TailAverage(10, std::nan("")), Error);
}

}  // namespace
}  // namespace hearth
