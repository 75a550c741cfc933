#include "trainer/train_config.h"

#include <sys/resource.h>

#include <cstdio>

#include "core/error.h"
#include "core/range_check.h"
#include "trainer/process_group.h"

namespace hearth::trainer {

GradCheckpoint parse_grad_checkpoint(const std::string& name) {
  if (name == "auto") return GradCheckpoint::kAuto;
  if (name == "on") return GradCheckpoint::kOn;
  if (name == "off") return GradCheckpoint::kOff;
  fail(ErrorCode::kInvalidArgument, "--grad-checkpoint must be auto, on or off, not \"" + name + "\"");
}

void TrainConfig::validate() const {
  require_integer_in_range("--steps", steps, 1, kMaxSteps);
  require_integer_in_range("--seq-len", seq_len, 2, kMaxSeqLen);
  require_integer_in_range("--batch", batch, 1, kMaxBatch);
  require_integer_in_range("--grad-accum", grad_accum, 1, kMaxGradAccum);
  require(batch * seq_len <= kMaxMicroBatchPositions, ErrorCode::kInvalidArgument,
          "--batch " + std::to_string(batch) + " x --seq-len " + std::to_string(seq_len) + " = " +
              std::to_string(batch * seq_len) + " positions per micro-batch, more than the limit of " +
              std::to_string(kMaxMicroBatchPositions) + "; use a smaller --batch and --grad-accum");
  require_number_in_range("--lr", lr, 0, kMaxLr, Bound::kOpen);
  require_integer_in_range("--warmup", warmup, 0, steps - 1);
  require_number_in_range("--min-lr-ratio", min_lr_ratio, 0, 1);
  require_number_in_range("--max-grad-norm", max_grad_norm, 0, 1e6);
  require_integer_in_range("--eval-every", eval_every, 0, kMaxSteps);
  require_integer_in_range("--eval-max-rows", eval_max_rows, 0, int64_t(1) << 30);
  require_integer_in_range("--patience", patience, 0, kMaxSteps);
  require_integer_in_range("--checkpoint-every", checkpoint_every, 0, kMaxSteps);
  require_integer_in_range("--stop-after", stop_after_steps, 0, kMaxSteps);
  require_integer_in_range("log_every", log_every, 1, kMaxSteps);
  optimizer.validate();
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
    require_number_in_range("--dp-clip", dp.clip, 0, 1e6, Bound::kOpen);
    require_number_in_range("--dp-noise", dp.noise, 0, 1e6);
    require_number_in_range("--dp-epsilon", dp.epsilon, 0, 1e6);
    require_number_in_range("--dp-delta", dp.delta, 0, 1, Bound::kOpen, Bound::kOpen);
    require(!(dp.noise > 0 && dp.epsilon > 0), ErrorCode::kInvalidArgument, "give --dp-noise or --dp-epsilon, not both");
  } else {
    // Not on, but a negative or non-finite value was still a mistake worth naming.
    require_number_in_range("--dp-noise", dp.noise, 0, 1e6);
    require_number_in_range("--dp-epsilon", dp.epsilon, 0, 1e6);
  }
}

void TrainConfig::validate_for_model(const ModelConfig& model) const {
  require(seq_len <= model.context_length(), ErrorCode::kInvalidArgument,
          "--seq-len " + std::to_string(seq_len) + " is longer than the model's context of " +
              std::to_string(model.context_length()) + " positions; use --seq-len " +
              std::to_string(model.context_length()) + " or less");
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
  const bool evaluated = eval_rows > 0;
  Json j{{"completed", completed},
         {"stop_reason", stop_reason},
         {"steps", steps_done},
         {"train_loss", train_loss},
         {"eval_rows", eval_rows},
         {"eval_loss_before", evaluated ? Json(eval_loss_before) : Json(nullptr)},
         {"eval_loss_after", evaluated ? Json(eval_loss_after) : Json(nullptr)},
         {"eval_ppl_before", evaluated ? Json(eval_ppl_before) : Json(nullptr)},
         {"eval_ppl_after", evaluated ? Json(eval_ppl_after) : Json(nullptr)},
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

namespace hearth::trainer {

TrainResult TrainResult::from_json(const Json& j) {
  auto number = [&](const char* key) { return j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0; };
  TrainResult r;
  r.steps_done = static_cast<int64_t>(number("steps"));
  r.train_loss = number("train_loss");
  r.eval_ppl_before = number("eval_ppl_before");
  r.eval_ppl_after = number("eval_ppl_after");
  // Older records have no eval_rows: a perplexity stands for an evaluation that happened.
  r.eval_rows = j.contains("eval_rows") ? static_cast<int64_t>(number("eval_rows")) : (r.eval_ppl_before > 0 ? 1 : 0);
  r.tokens_per_s = number("tokens_per_s");
  r.peak_rss_mb = number("peak_rss_mb");
  return r;
}

std::string TrainResult::summary_line() const {
  char held_out[128] = "no held-out rows (perplexity not measured)";
  if (eval_rows > 0) std::snprintf(held_out, sizeof held_out, "held-out perplexity %.3f -> %.3f", eval_ppl_before, eval_ppl_after);
  char buf[512];
  std::snprintf(buf, sizeof buf, "trained %lld steps: train loss %.4f, %s, %.0f tokens/s, peak RSS %.0f MB",
                static_cast<long long>(steps_done), train_loss, held_out, tokens_per_s, peak_rss_mb);
  return buf;
}

}  // namespace hearth::trainer
