// The optimizer interface every Hearth optimizer implements: parameter groups, step,
// zero_grad, learning-rate control for schedules, measured state memory, and state save/load.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hearth {
class SafetensorsFile;
class SafetensorsWriter;

namespace optim {

// A set of parameters that share a learning rate and weight decay. Every tensor must be a
// defined floating-point leaf with requires_grad; a tensor may belong to one group only.
struct ParamGroup {
  std::string name;                // for logs only ("lora", "dora_magnitude", ...)
  std::vector<at::Tensor> params;
  // Unset: the optimizer's defaults (OptimizerConfig::lr / weight_decay). Always set in
  // Optimizer::groups() once the optimizer is built.
  std::optional<double> lr;
  std::optional<double> weight_decay;
  // APOLLO only: project this group's matrices (false sends them to AdamW, e.g. embeddings).
  bool low_rank = true;
  // APOLLO only: a rank for this group's matrices; 0 means the optimizer's rank.
  int rank = 0;
};

// Per-parameter state. Every optimizer keeps Adam moments; what shape they have is the
// optimizer's business (the parameter's shape for AdamW, the projected shape for APOLLO).
struct ParamState {
  uint64_t step = 0;          // updates applied to this parameter so far
  at::Tensor exp_avg;         // first moment; undefined until the first update
  at::Tensor exp_avg_sq;      // second moment; undefined until the first update
  double last_update_norm = -1.0;  // APOLLO's norm-growth limiter memory; < 0: none yet
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Applies one update to every parameter that has a gradient (p.grad() defined); parameters
  // without one are skipped and their step counters do not advance.
  virtual void step() = 0;
  // Drops every gradient (sets it to undefined, as torch's set_to_none), freeing its memory.
  void zero_grad();

  // Learning rate of every group, or of one group (for schedules).
  void set_lr(double lr);
  void set_lr(size_t group, double lr);
  double lr(size_t group) const;
  double weight_decay(size_t group) const;

  const std::vector<ParamGroup>& groups() const { return groups_; }
  size_t num_params() const { return params_.size(); }
  // The parameter with flat index `index` (groups in order, params in order inside each).
  const at::Tensor& param(size_t index) const;
  const ParamState& state(size_t index) const;

  // Bytes held by the tensors listed by state_tensors(), measured from their storages.
  size_t state_bytes() const;
  // The same per parameter group, by the group's name (e.g. {"lora": 2048, "dora_magnitude": 512}).
  std::map<std::string, size_t> state_bytes_by_group() const;
  // Every tensor the optimizer keeps alive between steps, with a name for reports.
  virtual std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;

  // Writes the state into `dir` (created if missing): optimizer_state.bin (cereal: settings,
  // learning rates, step counters, limiter norms) and optimizer_moments.safetensors (moments).
  // Each file is written atomically; for a checkpoint that must switch as a whole, save into
  // a StagedDirectory.
  void save_state(const std::filesystem::path& dir) const;
  // Reads a state written by save_state into an optimizer built over the same parameters and
  // settings. All or nothing: on any error (kNotFound, kCorruptFile for a damaged file,
  // kInvalidArgument for a state of other parameters or settings) the optimizer is unchanged.
  void load_state(const std::filesystem::path& dir);
  // The same state as one byte string held in memory (a safetensors file: the moments, and the
  // scalars file as a U8 tensor), for checkpoints that are sealed before they reach the disk.
  // load_state_bytes has load_state's checks; `name` stands for the source in errors.
  std::string save_state_bytes() const;
  void load_state_bytes(std::string_view bytes, const std::string& name);

  // The kind ("adamw", "apollo", "apollo-mini") and a one-line summary for logs.
  virtual std::string kind() const = 0;
  virtual std::string describe() const = 0;

  static constexpr const char* kStateFile = "optimizer_state.bin";
  static constexpr const char* kMomentsFile = "optimizer_moments.safetensors";

 protected:
  // Groups without their own lr / weight_decay get these.
  Optimizer(std::vector<ParamGroup> groups, double default_lr, double default_weight_decay);

  // Settings a saved state must have been made with (rank, seed, ...) to be resumed bitwise.
  virtual std::map<std::string, std::string> state_settings() const = 0;
  // The shape the moments of parameter `index` must have.
  virtual std::vector<int64_t> moment_shape(size_t index) const = 0;
  // Called after a successful load_state, to drop caches derived from the old state.
  virtual void on_state_loaded() {}

  // Parameter `index` and the group it belongs to.
  size_t group_of(size_t index) const { return group_of_[index]; }
  ParamState& mutable_state(size_t index) { return states_[index]; }

 private:
  // The scalars file's bytes; the moments go into `moments`.
  std::string encode_state(SafetensorsWriter& moments) const;
  void decode_state(const std::string& state_file, const SafetensorsFile& moments, const std::string& what,
                    const std::string& moments_what);

  std::vector<ParamGroup> groups_;
  std::vector<at::Tensor> params_;   // flat view of groups_[*].params
  std::vector<size_t> group_of_;
  std::vector<ParamState> states_;
};

}  // namespace optim
}  // namespace hearth
