// Job specs, device states and policies as JSON: round trips, and every malformed value (wrong
// type, out of range, unknown field) refused with a message naming the field and what is allowed.
#include <gtest/gtest.h>

#include "core/error.h"
#include "engine/device_policy.h"
#include "engine/job_spec.h"
#include "engine/training_plan.h"

namespace hearth {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JobSpec, RoundTripsThroughJson) {
  engine::JobSpec s;
  s.user = "ann";
  s.base.path = "/models/x";
  s.base.quant = "nf4";
  s.training.rank = 16;
  s.training.optimizer = "apollo";
  s.training.dp.epsilon = 4;
  s.policy.min_battery_percent = 80;
  const engine::JobSpec back = engine::JobSpec::from_json(s.to_json(), "spec");
  EXPECT_EQ(back.to_json(), s.to_json());
  EXPECT_EQ(back.training.rank, 16);
  EXPECT_EQ(back.training.dp.epsilon, 4);
}

TEST(JobSpec, RefusesWrongTypesRangesAndUnknownFields) {
  auto training = [](const Json& j) { return error_of([&] { engine::TrainingSpec::from_json(j, "job.json training"); }); };
  EXPECT_NE(training({{"rank", 5.5}}).find("\"rank\" is 5.5; expected an integer in [1, 1024]"), std::string::npos)
      << training({{"rank", 5.5}});
  EXPECT_NE(training({{"rank", "8"}}).find("\"rank\""), std::string::npos);
  EXPECT_NE(training({{"steps", 0}}).find("\"steps\""), std::string::npos);
  EXPECT_NE(training({{"steps", 1e300}}).find("\"steps\""), std::string::npos);
  EXPECT_NE(training({{"lr", -1}}).find("\"lr\""), std::string::npos);
  EXPECT_NE(training({{"alpha", 1e38}}).find("\"alpha\""), std::string::npos);
  EXPECT_NE(training({{"rnak", 8}}).find("unknown field \"rnak\""), std::string::npos);
  EXPECT_NE(training({{"optimizer", "sgd"}}).find("optimizer"), std::string::npos);
  EXPECT_NE(training({{"dp", {{"delta", 2}}}}).find("\"delta\""), std::string::npos);
  EXPECT_NE(error_of([] { engine::JobSpec::from_json(Json::array(), "job.json"); }).find("expected a JSON object"),
            std::string::npos);
}

TEST(DevicePolicy, DefaultsRunOnChargeOrHalfBatteryCoolAndScreenOff) {
  const engine::JobPolicy p;
  engine::DeviceState s;
  EXPECT_EQ(p.refusal(s), "");
  s.charging = false;
  s.battery_percent = 50;
  EXPECT_EQ(p.refusal(s), "");
  s.battery_percent = 49;
  EXPECT_NE(p.refusal(s).find("49%"), std::string::npos);
  s.charging = true;
  s.temperature_c = 41;
  EXPECT_NE(p.refusal(s).find("41"), std::string::npos);
  s.temperature_c = 30;
  s.screen_on = true;
  EXPECT_NE(p.refusal(s).find("screen"), std::string::npos);
  engine::JobPolicy charging_only;
  charging_only.run_on_battery = false;
  engine::DeviceState on_battery;
  on_battery.charging = false;
  EXPECT_NE(charging_only.refusal(on_battery).find("charging"), std::string::npos);
}

TEST(DevicePolicy, StateFilesAreReadStrictly) {
  const engine::DeviceState s = engine::DeviceState::from_json({{"charging", false}, {"battery_percent", 72}}, "state.json");
  EXPECT_FALSE(s.charging);
  EXPECT_EQ(s.battery_percent, 72);
  EXPECT_NE(error_of([] { engine::DeviceState::from_json({{"battery_percent", 140}}, "state.json"); }).find("battery_percent"),
            std::string::npos);
  EXPECT_NE(error_of([] { engine::DeviceState::from_json({{"charging", "yes"}}, "state.json"); }).find("true or false"),
            std::string::npos);
  EXPECT_NE(error_of([] { engine::read_device_state("/nonexistent/state.json"); }).find("does not exist"), std::string::npos);
}

TEST(TrainingPlan, PicksCheckpointingAndSmallerMicroBatchesUnderACeiling) {
  ModelConfig m;  // the smollm2-135m shape
  m.hidden_size = 576;
  m.intermediate_size = 1536;
  m.num_layers = 30;
  m.num_heads = 9;
  m.num_kv_heads = 3;
  m.head_dim = 64;
  m.vocab_size = 49152;
  const size_t weights = 90 << 20;  // ~nf4 with an int8 head
  engine::TrainingSpec t;
  t.batch = 4;
  t.seq_len = 256;
  const engine::MemoryPlan free_plan = engine::plan_memory(m, weights, t, 5'000'000);
  EXPECT_EQ(free_plan.micro_batch, 4);
  t.max_memory_mb = 1 << 20;
  EXPECT_FALSE(engine::plan_memory(m, weights, t, 5'000'000).grad_checkpoint);  // room for everything
  t.max_memory_mb = 450;
  const engine::MemoryPlan tight = engine::plan_memory(m, weights, t, 5'000'000);
  EXPECT_TRUE(tight.grad_checkpoint);
  EXPECT_LE(tight.estimated_mb, 450);
  EXPECT_EQ(tight.micro_batch * tight.grad_accum, 4);
  // Each step of the search is monotone: less memory never comes from a larger micro-batch.
  EXPECT_LT(engine::estimate_step_mb(m, weights, 1, 256, true, 0, 1), engine::estimate_step_mb(m, weights, 4, 256, true, 0, 1));
  EXPECT_LT(engine::estimate_step_mb(m, weights, 4, 256, true, 0, 1), engine::estimate_step_mb(m, weights, 4, 256, false, 0, 1));
  t.max_memory_mb = 100;
  EXPECT_NE(error_of([&] { engine::plan_memory(m, weights, t, 5'000'000); }).find("raise the ceiling"), std::string::npos);
}

}  // namespace
}  // namespace hearth
