// Optimizer state: measured memory, and clear errors for state files that cannot be resumed.
#include <gtest/gtest.h>

#include <fstream>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "optim/adamw.h"
#include "optim/apollo.h"
#include "optim/make_optimizer.h"
#include "optim_test_support.h"

namespace hearth {
namespace optim {
namespace {

using namespace testing;

std::vector<at::Tensor> model_like_params(uint64_t seed) {
  return {make_param({256, 64}, seed), make_param({64, 256}, seed + 1), make_param({128, 128}, seed + 2), make_param({64}, seed + 3)};
}

ParamGroup group_of_params(std::vector<at::Tensor> params) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = 0.01;
  return g;
}

void step_once(Optimizer& opt, uint64_t seed) {
  for (size_t i = 0; i < opt.num_params(); ++i) set_grad(opt.param(i), make_grad(opt.param(i), seed + i));
  opt.step();
}

size_t sum_nbytes(const Optimizer& opt) {
  size_t n = 0;
  for (const auto& [name, t] : opt.state_tensors()) n += t.numel() * t.element_size();
  return n;
}

TEST(StateBytes, AdamWHoldsTwoMomentsPerParameter) {
  AdamW opt({group_of_params(model_like_params(1))}, AdamSettings{});
  EXPECT_EQ(opt.state_bytes(), 0u);
  step_once(opt, 10);
  const size_t numel = 256 * 64 * 2 + 128 * 128 + 64;
  EXPECT_EQ(opt.state_bytes(), 2 * numel * sizeof(float));
  EXPECT_EQ(opt.state_bytes(), sum_nbytes(opt));
}

TEST(StateBytes, ApolloHoldsProjectedMomentsAndProjections) {
  ApolloSettings s;
  s.rank = 16;
  Apollo opt({group_of_params(model_like_params(1))}, s);
  step_once(opt, 10);
  // Each matrix: moments [max, 16] twice, projection [16, min]; the vector: AdamW.
  const size_t floats = 3 * (2 * 256 * 16 + 16 * 64) - (2 * 256 * 16 + 16 * 64) + (2 * 128 * 16 + 16 * 128) + 2 * 64;
  EXPECT_EQ(opt.state_bytes(), floats * sizeof(float));
  EXPECT_EQ(opt.state_bytes(), sum_nbytes(opt));
  AdamW adamw({group_of_params(model_like_params(1))}, AdamSettings{});
  step_once(adamw, 10);
  EXPECT_LT(opt.state_bytes() * 3, adamw.state_bytes());
}

TEST(StateBytes, ApolloMiniIsTiny) {
  Apollo opt({group_of_params(model_like_params(1))}, apollo_mini_settings());
  AdamW adamw({group_of_params(model_like_params(1))}, AdamSettings{});
  step_once(opt, 10);
  step_once(adamw, 10);
  EXPECT_EQ(opt.state_bytes(), sum_nbytes(opt));
  EXPECT_LT(opt.state_bytes() * 50, adamw.state_bytes());
}

// LoRA matrices of a small model (rank 8 over 64-wide projections, as on stories260K): the
// default APOLLO rank is relative to each matrix, so its state stays well under AdamW's, and a
// matrix where projecting saves nothing is left to AdamW instead of costing more.
TEST(StateBytes, DefaultRanksNeverCostMoreThanAdamW) {
  auto lora = [](uint64_t seed) {
    return std::vector<at::Tensor>{make_param({8, 64}, seed), make_param({64, 8}, seed + 1), make_param({8, 172}, seed + 2),
                                   make_param({172, 8}, seed + 3)};
  };
  AdamW adamw({group_of_params(lora(1))}, AdamSettings{});
  Apollo apollo({group_of_params(lora(1))}, ApolloSettings{});
  Apollo mini({group_of_params(lora(1))}, apollo_mini_settings());
  for (Optimizer* o : std::vector<Optimizer*>{&adamw, &apollo, &mini}) step_once(*o, 10);
  EXPECT_LT(apollo.state_bytes(), adamw.state_bytes() / 2);
  EXPECT_LT(mini.state_bytes(), adamw.state_bytes() / 6);
  for (size_t i = 0; i < apollo.num_params(); ++i) EXPECT_EQ(apollo.rank(i), 2) << i;  // 8 / 4

  // A rank as wide as the matrix would need more than AdamW: that matrix falls back to AdamW.
  ApolloSettings full;
  full.rank = 8;
  Apollo wide({group_of_params(lora(1))}, full);
  step_once(wide, 10);
  for (size_t i = 0; i < wide.num_params(); ++i) EXPECT_EQ(wide.rank(i), 0) << i;
  EXPECT_EQ(wide.state_bytes(), adamw.state_bytes());
}

TEST(StateBytes, ReportedPerGroup) {
  ParamGroup matrices = group_of_params({make_param({256, 64}, 1)});
  matrices.name = "lora";
  ParamGroup vectors = group_of_params({make_param({64}, 2)});
  vectors.name = "dora_magnitude";
  vectors.low_rank = false;
  Apollo opt({matrices, vectors}, apollo_mini_settings());
  step_once(opt, 10);
  const std::map<std::string, size_t> by_group = opt.state_bytes_by_group();
  ASSERT_EQ(by_group.size(), 2u);
  EXPECT_EQ(by_group.at("dora_magnitude"), 2 * 64 * sizeof(float));
  EXPECT_EQ(by_group.at("lora") + by_group.at("dora_magnitude"), opt.state_bytes());
}

// An APOLLO optimizer over fresh parameters that has taken two steps and saved its state.
struct Saved {
  TempDir dir{"bad_state"};
  std::filesystem::path ckpt = dir.path() / "ckpt";
  ApolloSettings settings;
  std::unique_ptr<Apollo> opt;
  Saved() {
    settings.rank = 8;
    settings.update_gap = 4;
    settings.seed = 3;
    opt = std::make_unique<Apollo>(std::vector<ParamGroup>{group_of_params(model_like_params(1))}, settings);
    step_once(*opt, 10);
    step_once(*opt, 20);
    opt->save_state(ckpt);
  }
  std::unique_ptr<Apollo> fresh(ApolloSettings s) const {
    return std::make_unique<Apollo>(std::vector<ParamGroup>{group_of_params(model_like_params(1))}, s);
  }
};

void overwrite(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(StateFile, RoundTripRestoresEverything) {
  Saved saved;
  auto opt = saved.fresh(saved.settings);
  opt->load_state(saved.ckpt);
  for (size_t i = 0; i < opt->num_params(); ++i) {
    EXPECT_EQ(opt->state(i).step, 2u);
    EXPECT_EQ(opt->state(i).last_update_norm, saved.opt->state(i).last_update_norm);
    EXPECT_TRUE(at::equal(opt->state(i).exp_avg, saved.opt->state(i).exp_avg));
    EXPECT_TRUE(at::equal(opt->state(i).exp_avg_sq, saved.opt->state(i).exp_avg_sq));
  }
}

TEST(StateFile, MissingFolderOrFileIsNotFound) {
  Saved saved;
  auto opt = saved.fresh(saved.settings);
  expect_error([&] { opt->load_state(saved.dir.path() / "nope"); }, ErrorCode::kNotFound, "does not exist");
  std::filesystem::remove(saved.ckpt / Optimizer::kMomentsFile);
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kNotFound, Optimizer::kMomentsFile);
}

TEST(StateFile, DamagedScalarsFileIsCorrupt) {
  Saved saved;
  const auto path = saved.ckpt / Optimizer::kStateFile;
  const std::string good = read_file(path);
  auto opt = saved.fresh(saved.settings);
  overwrite(path, good.substr(0, good.size() / 2));
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "checksum");
  std::string flipped = good;
  flipped[good.size() - 5] ^= 0x40;
  overwrite(path, flipped);
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "damaged");
  overwrite(path, "not an optimizer state at all");
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "not a Hearth optimizer state");
  overwrite(path, "");
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "too short");
}

TEST(StateFile, DamagedMomentsFileIsCorrupt) {
  Saved saved;
  const auto path = saved.ckpt / Optimizer::kMomentsFile;
  const std::string good = read_file(path);
  auto opt = saved.fresh(saved.settings);
  overwrite(path, good.substr(0, good.size() - 100));
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "truncated");
}

TEST(StateFile, MomentsFromAnotherSaveAreRejected) {
  Saved saved;
  const std::string old_moments = read_file(saved.ckpt / Optimizer::kMomentsFile);
  step_once(*saved.opt, 30);
  saved.opt->save_state(saved.ckpt);
  overwrite(saved.ckpt / Optimizer::kMomentsFile, old_moments);
  auto opt = saved.fresh(saved.settings);
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "different saves");
}

TEST(StateFile, StateOfOtherParametersIsRejected) {
  Saved saved;
  auto params = model_like_params(1);
  params.pop_back();
  Apollo fewer({group_of_params(params)}, saved.settings);
  expect_error([&] { fewer.load_state(saved.ckpt); }, ErrorCode::kInvalidArgument, "parameters");
  params = model_like_params(1);
  params[0] = make_param({256, 65}, 99);
  Apollo reshaped({group_of_params(params)}, saved.settings);
  expect_error([&] { reshaped.load_state(saved.ckpt); }, ErrorCode::kInvalidArgument, "shape [256, 65]");
}

TEST(StateFile, StateOfOtherSettingsIsRejected) {
  Saved saved;
  ApolloSettings other = saved.settings;
  other.seed = 4;
  expect_error([&] { saved.fresh(other)->load_state(saved.ckpt); }, ErrorCode::kInvalidArgument, "seed");
  other = saved.settings;
  other.rank = 4;
  expect_error([&] { saved.fresh(other)->load_state(saved.ckpt); }, ErrorCode::kInvalidArgument, "ranks");
  AdamW adamw({group_of_params(model_like_params(1))}, AdamSettings{});
  expect_error([&] { adamw.load_state(saved.ckpt); }, ErrorCode::kInvalidArgument, "saved by the apollo optimizer");
}

TEST(StateFile, FailedLoadLeavesTheOptimizerUnchanged) {
  Saved saved;
  // A moments file of the right save that lacks the last tensor: loading fails only after
  // the other moments were read.
  const auto path = saved.ckpt / Optimizer::kMomentsFile;
  auto original = SafetensorsFile::open(path);
  SafetensorsWriter writer;
  for (const auto& e : original->entries()) {
    if (e.name != "param.3.exp_avg_sq") writer.add(e.name, original->tensor(e.name).clone());
  }
  for (const auto& [key, value] : original->metadata()) writer.set_metadata(key, value);
  original.reset();
  writer.write(path);
  auto opt = saved.fresh(saved.settings);
  step_once(*opt, 40);
  const at::Tensor m0 = opt->state(0).exp_avg.clone();
  expect_error([&] { opt->load_state(saved.ckpt); }, ErrorCode::kCorruptFile, "param.3.exp_avg_sq");
  EXPECT_EQ(opt->state(0).step, 1u);
  EXPECT_TRUE(at::equal(opt->state(0).exp_avg, m0));
}

TEST(MakeOptimizer, BuildsEachKindWithItsDefaults) {
  OptimizerConfig cfg;
  cfg.lr = 0.02;
  cfg.name = "adamw";
  auto adamw = make_optimizer(cfg, {group_of_params(model_like_params(1))});
  EXPECT_EQ(adamw->kind(), "adamw");
  EXPECT_NE(cfg.describe().find("eps 1e-08"), std::string::npos) << cfg.describe();
  cfg.name = "apollo";
  ParamGroup no_lr;
  no_lr.params = model_like_params(5);
  auto apollo = make_optimizer(cfg, {no_lr});
  EXPECT_EQ(apollo->kind(), "apollo");
  EXPECT_EQ(apollo->lr(0), 0.02);  // a group without lr takes the config's
  EXPECT_EQ(dynamic_cast<Apollo&>(*apollo).rank(0), 16);  // relative: a quarter of the 64-wide side
  EXPECT_NE(cfg.describe().find("eps 1e-06"), std::string::npos) << cfg.describe();
  cfg.name = "apollo-mini";
  auto mini = make_optimizer(cfg, {group_of_params(model_like_params(9))});
  EXPECT_EQ(mini->kind(), "apollo-mini");
  EXPECT_EQ(dynamic_cast<Apollo&>(*mini).rank(0), 1);
  EXPECT_NE(cfg.describe().find("scale 128"), std::string::npos) << cfg.describe();
  EXPECT_NE(mini->describe().find("tensor-wise"), std::string::npos) << mini->describe();
}

TEST(MakeOptimizer, RejectsUnknownNamesAndBadSettings) {
  OptimizerConfig cfg;
  cfg.name = "sgd";
  expect_error([&] { make_optimizer(cfg, {}); }, ErrorCode::kInvalidArgument, "unknown optimizer \"sgd\"");
  cfg.name = "apollo";
  cfg.apollo_rank = -1;
  expect_error([&] { make_optimizer(cfg, {}); }, ErrorCode::kInvalidArgument, "--apollo-rank must be an integer in 1..65536, got -1");
  cfg.apollo_rank.reset();
  cfg.apollo_update_gap = 0;
  expect_error([&] { make_optimizer(cfg, {}); }, ErrorCode::kInvalidArgument, "--apollo-update-gap must be an integer in 1..1000000, got 0");
}

}  // namespace
}  // namespace optim
}  // namespace hearth
