// What a personalization job is made of (whose data, which base model, how to train, when it may
// run) and what can be read about one while it runs, with their JSON forms: the job table keeps
// the spec, `hearth jobs status --json` and the C API return the info.
#pragma once
#include <cstdint>
#include <string>

#include "core/json.h"
#include "engine/device_policy.h"
#include "inference/load_options.h"
#include "trainer/train_config.h"

namespace hearth::engine {

// A base model as jobs and the engine name it.
struct BaseModelSpec {
  std::string path;               // HF folder, Hearth quantized folder, llama2.c file or folder
  std::string tokenizer;          // "" = found beside the model
  std::string dtype = "fp32";     // dense weights: fp32 | bf16
  std::string quant;              // quantize projections at load: "" | nf4 | int4 | int8
  std::string embeddings = "int8";  // with quant: int8 | nf4 | int4 | bf16

  LoadOptions load_options() const;  // kInvalidArgument for unknown names
  Json to_json() const;
  static BaseModelSpec from_json(const Json& j, const std::string& what);
};

// How a job trains. Defaults are chosen for a phone: APOLLO-Mini (optimizer state a few
// hundred bytes per matrix), a short sequence, and a memory ceiling when one is set.
struct TrainingSpec {
  std::string method = "lora";       // lora | dora
  int64_t rank = 8;
  double alpha = 16;
  bool rslora = false;
  double dropout = 0;
  std::string targets = "all";       // q,k,v,o,gate,up,down or all
  std::string optimizer = "apollo-mini";  // adamw | apollo | apollo-mini
  int64_t steps = 100;
  int64_t seq_len = 256;
  int64_t batch = 4;                 // rows per step (split into micro-batches under a memory ceiling)
  double lr = 1e-3;
  int64_t warmup = -1;               // -1: 10% of steps
  double eval_fraction = 0.1;        // share of the user's data held out
  int64_t eval_every = 0;            // 0: before and after only
  int64_t eval_max_rows = 64;        // held-out rows per evaluation (0: all)
  uint64_t seed = 0;
  trainer::DpOptions dp;             // DP-SGD, off unless noise or epsilon is set
  int64_t checkpoint_every = 0;      // also checkpoint every N steps inside a slice (0: at its end)
  int64_t max_memory_mb = 0;         // 0: no ceiling; else the job plans its micro-batch and checkpointing under it
  std::string adapter_name = "default";
  int64_t keep_versions = 3;         // registered versions of adapter_name kept (older ones erased)

  void validate() const;  // kInvalidArgument naming the setting, its value and the allowed range
  Json to_json() const;
  static TrainingSpec from_json(const Json& j, const std::string& what);
};

struct JobSpec {
  std::string user;
  BaseModelSpec base;  // filled from the engine's loaded base by submit_job when empty
  TrainingSpec training;
  JobPolicy policy;

  Json to_json() const;
  static JobSpec from_json(const Json& j, const std::string& what);
};

// Progress of a job as other processes read it from the database.
struct JobProgress {
  int64_t step = 0;
  int64_t steps = 0;
  double loss = 0;            // of the last step
  double tokens_per_s = 0;
  double eta_seconds = 0;
  double eval_loss_before = 0;
  double eval_loss_after = 0; // once finished
  double peak_rss_mb = 0;     // of the last slice
  int64_t slices = 0;
  std::string last_reason;    // why the last slice ended

  Json to_json() const;
  static JobProgress from_json(const Json& j);  // lenient: written by Hearth itself
};

struct JobInfo {
  int64_t id = 0;
  std::string user;
  std::string status;  // queued | running | paused | done | failed | cancelled
  JobSpec spec;
  JobProgress progress;
  int64_t created = 0, updated = 0;
  int64_t adapter_version = 0;  // the version it registered, once done

  Json to_json() const;
};

}  // namespace hearth::engine
