// A training checkpoint: everything needed to continue a run bitwise as if it had never
// stopped (trainable tensors, optimizer state, RNG states, step and data cursor), written
// atomically as one folder.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "optim/optimizer.h"
#include "trainer/trainable.h"

namespace hearth::trainer {

// The loop's own counters.
struct LoopState {
  int64_t step = 0;            // updates done
  int64_t rows_consumed = 0;   // data cursor: packed rows consumed so far (order is seeded)
  double best_eval = std::numeric_limits<double>::infinity();
  int64_t evals_since_best = 0;
  double eval_loss_before = 0;
  int64_t trained_tokens = 0;
  double train_seconds = 0;
  // The latest steps' training losses, oldest first: the last tenth of the run (at most
  // kRecentLossesKept), so a run resumed from a checkpoint reports the same training loss as one
  // that never stopped, even when this process logged none of those steps.
  std::vector<double> recent_losses;
};

constexpr size_t kRecentLossesKept = 1024;

// How many recent losses a run of `steps` updates keeps: its last tenth, at least one.
size_t recent_losses_to_keep(int64_t steps);
// Appends `loss`, dropping the oldest beyond `keep`.
void record_recent_loss(LoopState& state, double loss, size_t keep);
// The training loss a run reports: the mean of the last tenth of its `steps_done` updates.
double recent_training_loss(const LoopState& state);

// Writes dir/ (trainable.safetensors, optimizer/, rng.safetensors, state.json) as a whole;
// an existing checkpoint there is replaced only once the new one is complete.
void save_training_checkpoint(const std::filesystem::path& dir, const Trainable& trainable,
                              const optim::Optimizer& optimizer, const std::vector<at::Generator>& generators,
                              const LoopState& state, const Json& identity);

// The same checkpoint as one byte string held in memory (a safetensors file: trainable
// tensors, generator states, the optimizer's state bytes; the loop state in metadata), for
// runs whose checkpoints are sealed before they reach the disk; and restoring from it, with
// the checks of load_training_checkpoint (`name` stands for the source in errors).
std::string training_checkpoint_bytes(const Trainable& trainable, const optim::Optimizer& optimizer,
                                      const std::vector<at::Generator>& generators, const LoopState& state,
                                      const Json& identity);
LoopState load_training_checkpoint_bytes(std::string_view bytes, const std::string& name, Trainable& trainable,
                                         optim::Optimizer& optimizer, std::vector<at::Generator>& generators,
                                         const Json& identity);

// Restores a checkpoint into the given objects (built exactly as for the saved run). kNotFound
// when there is none; kInvalidArgument when it was made with other settings or parameters.
LoopState load_training_checkpoint(const std::filesystem::path& dir, Trainable& trainable, optim::Optimizer& optimizer,
                                   std::vector<at::Generator>& generators, const Json& identity);

}  // namespace hearth::trainer
