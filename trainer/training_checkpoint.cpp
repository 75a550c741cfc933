#include "trainer/training_checkpoint.h"

#include <cmath>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "trainer/train_config.h"

namespace hearth::trainer {
namespace fs = std::filesystem;
namespace {

constexpr const char* kOptimizerTensor = "optimizer_state";

std::string generator_name(size_t i) { return "generator." + std::to_string(i); }

// A diverged step's loss (NaN, infinity) is written as null: JSON has no such numbers.
Json recent_losses_json(const std::vector<double>& losses) {
  Json out = Json::array();
  for (double l : losses) out.push_back(std::isfinite(l) ? Json(l) : Json(nullptr));
  return out;
}

std::vector<double> recent_losses_from_json(const Json& j, const std::string& what) {
  std::vector<double> losses;
  if (j.contains("recent_losses")) {
    const Json& a = j["recent_losses"];
    require(a.is_array() && a.size() <= kRecentLossesKept, ErrorCode::kCorruptFile,
            what + ": recent_losses must be an array of at most " + std::to_string(kRecentLossesKept) + " numbers");
    for (const Json& l : a) {
      require(l.is_null() || (l.is_number() && l.get<double>() >= 0 && l.get<double>() <= 1e6), ErrorCode::kCorruptFile,
              what + ": recent_losses holds " + l.dump() + " (losses are numbers in [0, 1e6] or null)");
      losses.push_back(l.is_null() ? std::numeric_limits<double>::quiet_NaN() : l.get<double>());
    }
  } else if (j.contains("last_loss") && !j["last_loss"].is_null()) {
    // Checkpoints of session 30 kept only the latest loss.
    losses.push_back(json_get_number_in_range(j, "last_loss", 0, 1e6, what));
  }
  return losses;
}

Json loop_state_json(const LoopState& state, const Trainable& trainable, const Json& identity) {
  return Json{{"step", state.step},
              {"rows_consumed", state.rows_consumed},
              {"best_eval", std::isfinite(state.best_eval) ? Json(state.best_eval) : Json(nullptr)},
              {"evals_since_best", state.evals_since_best},
              {"eval_loss_before", state.eval_loss_before},
              {"trained_tokens", state.trained_tokens},
              {"train_seconds", state.train_seconds},
              {"recent_losses", recent_losses_json(state.recent_losses)},
              {"method", trainable.method()},
              {"identity", identity}};
}

// Refuses a checkpoint of other settings; `where` names it for the advice.
void check_identity(const Json& j, const std::string& what, const std::string& where, const Trainable& trainable,
                    const Json& identity) {
  require(json_get<std::string>(j, "method", what) == trainable.method() && j.contains("identity") &&
              j.at("identity") == identity,
          ErrorCode::kInvalidArgument,
          "the checkpoint in " + where + " was made with other settings (" + j.value("identity", Json()).dump() +
              "); resume with the same options or start afresh without --resume");
}

LoopState loop_state_from_json(const Json& j, const std::string& what) {
  LoopState s;
  constexpr int64_t kMaxCount = int64_t(1) << 62;
  s.step = json_get_integer_in_range(j, "step", 0, kMaxSteps, what);
  s.rows_consumed = json_get_integer_in_range(j, "rows_consumed", 0, kMaxCount, what);
  // Infinity (no evaluation yet) is written as null.
  s.best_eval = j.contains("best_eval") && !j["best_eval"].is_null() ? json_get_number_in_range(j, "best_eval", 0, 1e6, what)
                                                                      : std::numeric_limits<double>::infinity();
  s.evals_since_best = json_get_integer_in_range(j, "evals_since_best", 0, kMaxSteps, what);
  s.eval_loss_before = json_get_number_in_range(j, "eval_loss_before", 0, 1e6, what);
  s.trained_tokens = json_get_integer_in_range(j, "trained_tokens", 0, kMaxCount, what);
  s.train_seconds = json_get_number_in_range(j, "train_seconds", 0, 1e12, what);
  // Absent from checkpoints written before it existed (their runs report the loss of the steps
  // they log themselves).
  s.recent_losses = recent_losses_from_json(j, what);
  return s;
}

// Checks that `params` and `rng` hold every tensor (with the prefixes given) before anything changes.
void check_tensors(const SafetensorsFile& params, const std::string& param_prefix, const SafetensorsFile& rng,
                   const std::string& rng_prefix, const Trainable& trainable, size_t generators) {
  for (const auto& [name, p] : trainable.named_parameters()) {
    const std::string key = param_prefix + name;
    require(params.contains(key) && params.entry(key).shape == p.sizes().vec(), ErrorCode::kInvalidArgument,
            "the checkpoint's tensor " + name + " is missing or has another shape");
  }
  for (size_t i = 0; i < generators; ++i) {
    require(rng.contains(rng_prefix + generator_name(i)), ErrorCode::kCorruptFile,
            "the checkpoint lacks the state of generator " + std::to_string(i));
  }
}

void restore_tensors(const SafetensorsFile& params, const std::string& param_prefix, const SafetensorsFile& rng,
                     const std::string& rng_prefix, Trainable& trainable, std::vector<at::Generator>& generators) {
  {
    at::NoGradGuard no_grad;
    for (auto& [name, p] : trainable.named_parameters()) p.copy_(params.tensor(param_prefix + name));
  }
  for (size_t i = 0; i < generators.size(); ++i) {
    generators[i].set_state(rng.tensor(rng_prefix + generator_name(i)).clone());
  }
}

}  // namespace

size_t recent_losses_to_keep(int64_t steps) {
  return std::min<size_t>(kRecentLossesKept, std::max<int64_t>(1, steps / 10));
}

void record_recent_loss(LoopState& state, double loss, size_t keep) {
  state.recent_losses.push_back(loss);
  if (state.recent_losses.size() > keep)
    state.recent_losses.erase(state.recent_losses.begin(), state.recent_losses.end() - std::ptrdiff_t(keep));
}

double recent_training_loss(const LoopState& state) {
  const size_t tail = std::min(state.recent_losses.size(), recent_losses_to_keep(state.step));
  if (tail == 0) return 0;
  double sum = 0;
  for (size_t i = state.recent_losses.size() - tail; i < state.recent_losses.size(); ++i) sum += state.recent_losses[i];
  return sum / double(tail);
}

void save_training_checkpoint(const fs::path& dir, const Trainable& trainable, const optim::Optimizer& optimizer,
                              const std::vector<at::Generator>& generators, const LoopState& state,
                              const Json& identity) {
  StagedDirectory staged(dir);
  SafetensorsWriter params;
  for (const auto& [name, p] : trainable.named_parameters()) params.add(name, p.detach());
  params.write(staged.path() / "trainable.safetensors");
  optimizer.save_state(staged.path() / "optimizer");
  SafetensorsWriter rng;
  for (size_t i = 0; i < generators.size(); ++i) rng.add(generator_name(i), generators[i].get_state());
  rng.write(staged.path() / "rng.safetensors");
  write_file_atomic(staged.path() / "state.json", loop_state_json(state, trainable, identity).dump(2));
  staged.commit();
}

LoopState load_training_checkpoint(const fs::path& dir, Trainable& trainable, optim::Optimizer& optimizer,
                                   std::vector<at::Generator>& generators, const Json& identity) {
  require(fs::exists(dir / "state.json"), ErrorCode::kNotFound,
          "no checkpoint to resume from at " + dir.string() + " (run without --resume to start afresh)");
  const Json j = read_json_file(dir / "state.json");
  const std::string what = (dir / "state.json").string();
  check_identity(j, what, dir.string(), trainable, identity);
  auto params = SafetensorsFile::open(dir / "trainable.safetensors");
  auto rng = SafetensorsFile::open(dir / "rng.safetensors");
  // Check everything before changing anything.
  check_tensors(*params, "", *rng, "", trainable, generators.size());
  optimizer.load_state(dir / "optimizer");
  restore_tensors(*params, "", *rng, "", trainable, generators);
  return loop_state_from_json(j, what);
}

std::string training_checkpoint_bytes(const Trainable& trainable, const optim::Optimizer& optimizer,
                                      const std::vector<at::Generator>& generators, const LoopState& state,
                                      const Json& identity) {
  SafetensorsWriter w;
  for (const auto& [name, p] : trainable.named_parameters()) w.add("trainable." + name, p.detach());
  for (size_t i = 0; i < generators.size(); ++i) w.add("rng." + generator_name(i), generators[i].get_state());
  const std::string opt = optimizer.save_state_bytes();
  at::Tensor opt_bytes = at::empty({int64_t(opt.size())}, at::kByte);
  std::memcpy(opt_bytes.data_ptr(), opt.data(), opt.size());
  w.add(kOptimizerTensor, opt_bytes);
  w.set_metadata("format", "hearth-training-checkpoint-1");
  w.set_metadata("state.json", loop_state_json(state, trainable, identity).dump());
  return w.to_bytes();
}

LoopState load_training_checkpoint_bytes(std::string_view bytes, const std::string& name, Trainable& trainable,
                                         optim::Optimizer& optimizer, std::vector<at::Generator>& generators,
                                         const Json& identity) {
  auto file = SafetensorsFile::from_bytes(bytes, name);
  auto meta = file->metadata().find("state.json");
  require(meta != file->metadata().end() && file->contains(kOptimizerTensor), ErrorCode::kCorruptFile,
          name + " is not a Hearth training checkpoint");
  const Json j = parse_json(meta->second, name + " (state.json)");
  check_identity(j, name + " (state.json)", name, trainable, identity);
  check_tensors(*file, "trainable.", *file, "rng.", trainable, generators.size());
  const at::Tensor opt = file->tensor(kOptimizerTensor);
  optimizer.load_state_bytes(std::string_view(static_cast<const char*>(opt.data_ptr()), opt.numel()), name + " (optimizer)");
  restore_tensors(*file, "trainable.", *file, "rng.", trainable, generators);
  return loop_state_from_json(j, name + " (state.json)");
}

}  // namespace hearth::trainer
