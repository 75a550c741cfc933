#include "trainer/training_checkpoint.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace hearth::trainer {
namespace fs = std::filesystem;

void save_training_checkpoint(const fs::path& dir, const Trainable& trainable, const optim::Optimizer& optimizer,
                              const std::vector<at::Generator>& generators, const LoopState& state,
                              const Json& identity) {
  StagedDirectory staged(dir);
  SafetensorsWriter params;
  for (const auto& [name, p] : trainable.named_parameters()) params.add(name, p.detach());
  params.write(staged.path() / "trainable.safetensors");
  optimizer.save_state(staged.path() / "optimizer");
  SafetensorsWriter rng;
  for (size_t i = 0; i < generators.size(); ++i) rng.add("generator." + std::to_string(i), generators[i].get_state());
  rng.write(staged.path() / "rng.safetensors");
  Json j{{"step", state.step},
         {"rows_consumed", state.rows_consumed},
         {"best_eval", std::isfinite(state.best_eval) ? Json(state.best_eval) : Json(nullptr)},
         {"evals_since_best", state.evals_since_best},
         {"eval_loss_before", state.eval_loss_before},
         {"trained_tokens", state.trained_tokens},
         {"train_seconds", state.train_seconds},
         {"method", trainable.method()},
         {"identity", identity}};
  write_file_atomic(staged.path() / "state.json", j.dump(2));
  staged.commit();
}

LoopState load_training_checkpoint(const fs::path& dir, Trainable& trainable, optim::Optimizer& optimizer,
                                   std::vector<at::Generator>& generators, const Json& identity) {
  require(fs::exists(dir / "state.json"), ErrorCode::kNotFound,
          "no checkpoint to resume from at " + dir.string() + " (run without --resume to start afresh)");
  const Json j = read_json_file(dir / "state.json");
  const std::string what = (dir / "state.json").string();
  require(json_get<std::string>(j, "method", what) == trainable.method() && j.contains("identity") &&
              j.at("identity") == identity,
          ErrorCode::kInvalidArgument,
          "the checkpoint in " + dir.string() + " was made with other settings (" + j.value("identity", Json()).dump() +
              "); resume with the same options or start afresh without --resume");
  auto params = SafetensorsFile::open(dir / "trainable.safetensors");
  auto rng = SafetensorsFile::open(dir / "rng.safetensors");
  // Check everything before changing anything.
  for (const auto& [name, p] : trainable.named_parameters()) {
    require(params->contains(name) && params->entry(name).shape == p.sizes().vec(), ErrorCode::kInvalidArgument,
            "the checkpoint's tensor " + name + " is missing or has another shape");
  }
  for (size_t i = 0; i < generators.size(); ++i) {
    require(rng->contains("generator." + std::to_string(i)), ErrorCode::kCorruptFile,
            "the checkpoint lacks the state of generator " + std::to_string(i));
  }
  optimizer.load_state(dir / "optimizer");
  {
    at::NoGradGuard no_grad;
    for (auto& [name, p] : trainable.named_parameters()) p.copy_(params->tensor(name));
  }
  for (size_t i = 0; i < generators.size(); ++i) {
    generators[i].set_state(rng->tensor("generator." + std::to_string(i)).clone());
  }
  LoopState s;
  s.step = json_get<int64_t>(j, "step", what);
  s.rows_consumed = json_get<int64_t>(j, "rows_consumed", what);
  s.best_eval = json_get_or<double>(j, "best_eval", std::numeric_limits<double>::infinity(), what);
  s.evals_since_best = json_get<int64_t>(j, "evals_since_best", what);
  s.eval_loss_before = json_get<double>(j, "eval_loss_before", what);
  s.trained_tokens = json_get<int64_t>(j, "trained_tokens", what);
  s.train_seconds = json_get<double>(j, "train_seconds", what);
  return s;
}

}  // namespace hearth::trainer
