// The training loop: micro-batches with gradient accumulation, optional per-block gradient
// checkpointing, chunked output loss, warm-up + cosine schedule, global-norm clipping,
// held-out evaluation with early stopping, metrics, checkpoint on stop and exact resume.
#pragma once
#include <string>

#include "inference/decoder.h"
#include "trainer/packing.h"
#include "trainer/train_config.h"
#include "trainer/trainable.h"

namespace hearth::trainer {

// Names that go into the saved adapter's metadata.
struct BaseModelInfo {
  std::string name;         // what --model said
  std::string fingerprint;  // LoadedModel::fingerprint
};

// Trains `trainable` (already attached to `decoder`) on `train_rows`, evaluating on `eval_rows`
// (may be empty). Writes into cfg.out: metrics.jsonl while running; on completion the result
// (PEFT adapter or full model), loss_curve.svg and metrics.jsonl; when stopped (SIGINT/SIGTERM
// via stop_signal.h, or cfg.stop_after_steps) a checkpoint in cfg.out/checkpoint instead.
TrainResult train(Decoder& decoder, Trainable& trainable, const PackedRows& train_rows, const PackedRows& eval_rows,
                  const TrainConfig& cfg, const BaseModelInfo& base);

// Whether checkpointing is worth it for this shape: estimated activation memory of one
// micro-batch without it above 256 MiB.
bool auto_grad_checkpoint(const ModelConfig& model, int64_t batch, int64_t seq_len);

// Mean loss per trained target over `rows` (no gradients, dropout off). With a group, each
// member evaluates its share of the rows and all get the mean over all of them.
double evaluate_loss(const Decoder& decoder, Trainable& trainable, const PackedRows& rows, int64_t batch,
                     int64_t max_rows = 0, ProcessGroup* group = nullptr);

// Peak resident memory of this process so far, in MB.
double peak_rss_mb();

}  // namespace hearth::trainer
