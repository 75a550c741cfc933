// From a job's training settings to what the trainer runs: the adapter's configuration, the
// loop's configuration, and a memory plan (gradient checkpointing and micro-batches) that keeps
// a step under the job's memory ceiling. Deterministic in its inputs, so every slice of a job
// makes the same plan and a resumed job stays bitwise the same.
#pragma once
#include <cstdint>
#include <string>

#include "adapters/adapter_config.h"
#include "engine/job_spec.h"
#include "inference/model_config.h"
#include "trainer/train_config.h"

namespace hearth::engine {

struct MemoryPlan {
  bool grad_checkpoint = false;
  int64_t micro_batch = 1;  // rows per forward/backward
  int64_t grad_accum = 1;   // micro-batches per step (micro_batch * grad_accum = the job's batch)
  double estimated_mb = 0;  // resident memory the plan expects at its peak
  std::string describe() const;
};

// Estimated peak resident memory (MB) of a training step over a model of `config` whose weights
// take `weight_bytes`, for one micro-batch of `micro_batch` rows of `seq_len` positions, an
// adapter of `adapter_params` fp32 parameters and an optimizer keeping `state_bytes_per_param`.
double estimate_step_mb(const ModelConfig& config, size_t weight_bytes, int64_t micro_batch, int64_t seq_len,
                        bool grad_checkpoint, int64_t adapter_params, double state_bytes_per_param);

// The fastest plan under `ceiling_mb` (0: no ceiling: the whole batch at once, checkpointing
// when activations would be large): no checkpointing before checkpointing, larger micro-batches
// (dividing the batch) before smaller. kInvalidArgument naming the smallest memory that would
// fit when none does.
MemoryPlan plan_memory(const ModelConfig& config, size_t weight_bytes, const TrainingSpec& spec, int64_t adapter_params);

// The adapter a job trains (seeded by the job's seed).
AdapterConfig adapter_config_of(const TrainingSpec& spec);

// The trainer's configuration for a job (in-memory run; the caller adds checkpoint callbacks
// and stop conditions). The warm-up defaults to 10% of the steps.
trainer::TrainConfig train_config_of(const TrainingSpec& spec, const MemoryPlan& plan);

// Trainable parameters of an adapter of `adapter` over a model of `config`.
int64_t adapter_parameter_count(const ModelConfig& config, const AdapterConfig& adapter);

}  // namespace hearth::engine
