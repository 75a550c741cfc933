#include "trainer/train_config.h"

#include <sys/resource.h>

#include "core/error.h"
#include "trainer/process_group.h"

namespace hearth::trainer {

GradCheckpoint parse_grad_checkpoint(const std::string& name) {
  if (name == "auto") return GradCheckpoint::kAuto;
  if (name == "on") return GradCheckpoint::kOn;
  if (name == "off") return GradCheckpoint::kOff;
  fail(ErrorCode::kInvalidArgument, "--grad-checkpoint must be auto, on or off, not \"" + name + "\"");
}

void TrainConfig::validate() const {
  require(steps > 0, ErrorCode::kInvalidArgument, "--steps must be positive");
  require(seq_len >= 2, ErrorCode::kInvalidArgument, "--seq-len must be at least 2");
  require(batch > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
  require(grad_accum > 0, ErrorCode::kInvalidArgument, "--grad-accum must be positive");
  require(lr > 0, ErrorCode::kInvalidArgument, "--lr must be positive");
  require(warmup >= 0 && warmup < steps, ErrorCode::kInvalidArgument, "--warmup must be in [0, steps)");
  require(eval_every >= 0 && patience >= 0 && eval_max_rows >= 0, ErrorCode::kInvalidArgument,
          "--eval-every, --patience and --eval-max-rows must not be negative");
  require(in_memory || !out.empty(), ErrorCode::kInvalidArgument, "--out is required");
  require(!in_memory || save_checkpoint || (checkpoint_every == 0 && stop_after_steps == 0), ErrorCode::kInvalidArgument,
          "an in-memory run needs somewhere to put its checkpoints (save_checkpoint)");
  require(!in_memory || !resume || load_checkpoint, ErrorCode::kInvalidArgument,
          "an in-memory run resumes from load_checkpoint, which is not set");
  if (group && group->size() > 1) {
    require(!dp.enabled(), ErrorCode::kUnsupported,
            "DP-SGD is not supported with data parallelism (--world-size > 1); train in one process for DP-SGD");
    require(!in_memory, ErrorCode::kUnsupported, "a data-parallel run writes its results to --out; it cannot run in memory");
  }
  if (dp.enabled()) {
    require(dp.clip > 0, ErrorCode::kInvalidArgument, "--dp-clip must be positive");
    require(dp.noise >= 0 && dp.epsilon >= 0, ErrorCode::kInvalidArgument, "--dp-noise and --dp-epsilon must not be negative");
    require(dp.delta > 0 && dp.delta < 1, ErrorCode::kInvalidArgument, "--dp-delta must be in (0, 1)");
    require(!(dp.noise > 0 && dp.epsilon > 0), ErrorCode::kInvalidArgument, "give --dp-noise or --dp-epsilon, not both");
  }
}

Json TrainConfig::identity() const {
  optim::OptimizerConfig o = optimizer;
  o.lr = lr;  // the loop drives the rate; describe the one it peaks at
  Json j{{"steps", steps},     {"seq_len", seq_len},      {"batch", batch},
         {"grad_accum", grad_accum}, {"lr", lr},        {"warmup", warmup},
         {"min_lr_ratio", min_lr_ratio}, {"max_grad_norm", max_grad_norm}, {"seed", seed},
         {"optimizer", o.describe()}};
  if (group && group->size() > 1) j["world_size"] = group->size();  // each rank's share of a step depends on it
  if (dp.enabled()) j["dp"] = Json{{"clip", dp.clip}, {"noise", dp.noise}, {"epsilon", dp.epsilon}, {"delta", dp.delta}};
  return j;
}

Json TrainResult::to_json() const {
  Json j{{"completed", completed},
         {"stop_reason", stop_reason},
         {"steps", steps_done},
         {"train_loss", train_loss},
         {"eval_loss_before", eval_loss_before},
         {"eval_loss_after", eval_loss_after},
         {"eval_ppl_before", eval_ppl_before},
         {"eval_ppl_after", eval_ppl_after},
         {"tokens_per_s", tokens_per_s},
         {"trained_tokens", trained_tokens},
         {"grad_checkpoint", grad_checkpoint},
         {"optimizer_state_bytes", optimizer_state_bytes},
         {"optimizer_state_by_group", optimizer_state_by_group},
         {"peak_rss_mb", peak_rss_mb}};
  if (!privacy.is_null()) j["privacy"] = privacy;
  return j;
}

}  // namespace hearth::trainer
