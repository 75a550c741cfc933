// Everything a training run is configured by (what `hearth train` parses) and what it reports.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "core/json.h"
#include "inference/model_config.h"
#include "optim/make_optimizer.h"

namespace hearth::trainer {

class ProcessGroup;  // trainer/process_group.h

enum class GradCheckpoint { kAuto, kOn, kOff };

// Bounds of a run's settings: far beyond what an on-device run needs, near enough that a typo
// (an extra zero or ten) is refused instead of training for years or allocating terabytes.
constexpr int64_t kMaxSteps = 1000000;
constexpr int64_t kMaxSeqLen = int64_t(1) << 20;
constexpr int64_t kMaxBatch = 65536;
constexpr int64_t kMaxGradAccum = 65536;
constexpr int64_t kMaxMicroBatchPositions = int64_t(1) << 20;
constexpr double kMaxLr = 1.0;

// DP-SGD for one run (off unless noise or a target ε is given): Poisson-sampled rows, each
// row's gradient clipped to `clip`, Gaussian noise σ·clip on the sum (trainer/private_step.h).
struct DpOptions {
  double clip = 1.0;      // C
  double noise = 0;       // σ; 0 with epsilon > 0: the smallest σ reaching epsilon (RDP accountant)
  double epsilon = 0;     // target ε at delta for the whole run
  double delta = 1e-5;
  // 0: seeded from the OS's random source. A known seed lets anyone who knows it replay the
  // sampling and the noise, so set it only for experiments that must repeat exactly.
  uint64_t seed = 0;
  bool enabled() const { return noise > 0 || epsilon > 0; }
};
GradCheckpoint parse_grad_checkpoint(const std::string& name);  // "auto" | "on" | "off"

struct TrainConfig {
  int64_t steps = 100;        // optimizer updates
  int64_t seq_len = 256;      // positions per packed row
  int64_t batch = 4;          // rows per micro-batch
  int64_t grad_accum = 1;     // micro-batches per update
  double lr = 2e-4;
  int64_t warmup = 10;
  double min_lr_ratio = 0.1;  // cosine decays to lr * min_lr_ratio
  double max_grad_norm = 1.0; // global-norm clipping; <= 0 disables
  int64_t eval_every = 50;    // steps between held-out evaluations; 0: only before and after
  int64_t eval_max_rows = 0;  // cap on held-out rows per evaluation; 0: all
  int64_t patience = 0;       // stop after this many evaluations without improvement; 0: never
  uint64_t seed = 0;          // data order, dropout, adapter init, APOLLO projections
  GradCheckpoint grad_checkpoint = GradCheckpoint::kAuto;
  optim::OptimizerConfig optimizer;
  std::filesystem::path out;       // the result; run state (checkpoint/, metrics.jsonl) lives here too
  bool resume = false;             // continue from out/checkpoint
  int64_t checkpoint_every = 0;    // also checkpoint every N steps; 0: only when stopped
  int64_t stop_after_steps = 0;    // > 0: stop (with a checkpoint) once this many steps are done
  bool progress = true;            // progress bar / lines on stderr
  int64_t log_every = 10;          // plain progress lines every N steps when stderr is not a TTY
  DpOptions dp;
  // Nothing of the run touches the disk (no metrics.jsonl, checkpoint or result files under
  // out): for a user's data from the vault, where the caller seals the result itself.
  bool in_memory = false;
  // in_memory runs: checkpoints go to save_checkpoint (the bytes of training_checkpoint_bytes,
  // to be sealed) and --resume reads load_checkpoint's; required when they checkpoint or resume.
  std::function<void(int64_t step, const std::string& bytes)> save_checkpoint;
  std::function<std::string()> load_checkpoint;
  // Stops the run like a signal does when it returns true (an app's cancel flag, the end of a
  // job's slice): checked before every step and at the interruption points inside one
  // (trainer/interruption.h), where a long step is abandoned and the last whole one kept. Cheap.
  std::function<bool()> should_stop;
  // Called after every completed step with its metrics line (step, loss, tokens_per_s, ...).
  std::function<void(const Json& line)> on_step;
  // Data parallelism: with a group of several processes (trainer/process_group.h), every
  // member runs this same configuration over the same data, each on its share of every step's
  // global batch of batch * grad_accum * group size rows; gradients are summed over the group
  // each step, so every member applies the same update; rank 0 alone writes metrics,
  // checkpoints and the result. Null or a group of one: a single process.
  std::shared_ptr<ProcessGroup> group;

  // Refuses any setting outside its range (kInvalidArgument naming the option, the value and
  // the range), before any work starts.
  void validate() const;
  // What depends on the model: --seq-len within its context.
  void validate_for_model(const ModelConfig& model) const;
  // The settings a checkpoint must share with the run resuming it.
  Json identity() const;
};

struct TrainResult {
  bool completed = false;          // false: stopped early by a signal, should_stop or stop_after_steps
  bool checkpoint_saved = false;   // a stopped run saved a checkpoint (not when it stopped before step 1)
  std::string stop_reason;         // "finished" | "early_stopping" | "interrupted" | "step_limit"
  int64_t steps_done = 0;
  double train_loss = 0;           // mean loss of the run's last steps (its last 10%, at least 1, at most 1024)
  double eval_loss_before = 0, eval_loss_after = 0;
  double eval_ppl_before = 0, eval_ppl_after = 0;  // meaningful only when eval_rows > 0
  int64_t eval_rows = 0;           // held-out rows evaluated on; 0: no held-out perplexity
  double tokens_per_s = 0;         // positions processed per second of training steps
  int64_t trained_tokens = 0;      // positions with loss weight, over the run
  bool grad_checkpoint = false;
  size_t optimizer_state_bytes = 0;
  Json optimizer_state_by_group = Json::object();  // bytes per parameter group ("lora", ...)
  double peak_rss_mb = 0;
  Json privacy;                    // DP-SGD runs: epsilon, delta, sigma, clip, sampling_rate, steps; else null
  // eval_* are null when there were no held-out rows.
  Json to_json() const;
  // "trained N steps: train loss L, held-out perplexity A -> B, ..." for people.
  std::string summary_line() const;
  // The figures summary_line() shows, read back from to_json() (e.g. a registered adapter's
  // metrics); absent or null fields stay at their defaults.
  static TrainResult from_json(const Json& j);
};

}  // namespace hearth::trainer
