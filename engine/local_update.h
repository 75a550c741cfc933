// A federated client's local round: a copy of the population adapter trained on one user's
// stored data (decrypted in memory, never sent, nothing written), and how its update s·B·A
// changed — the only thing that leaves the device, masked (engine/federated_client.h).
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "adapters/adapter.h"
#include "engine/job_spec.h"
#include "inference/model_loader.h"
#include "storage/vault.h"

namespace hearth::engine {

struct LocalUpdate {
  at::Tensor delta;          // change of the adapter's products (adapters/low_rank_product.h), fp32
  int64_t train_rows = 0;    // packed training rows the user's data made
  int64_t trained_tokens = 0;
  double eval_loss_before = 0, eval_loss_after = 0;  // on the user's own held-out rows
  double seconds = 0;
};

// Trains a copy of `start` (a LoRA adapter over `base`) for spec.steps with spec's optimizer,
// learning rate, batch and sequence length (its adapter fields are ignored: the shape is
// `start`'s) and returns the change. The audit log records that the user's data was trained on.
LocalUpdate train_local_update(storage::Vault& vault, LoadedModel& base, const std::string& base_name,
                               const std::string& actor, const std::string& user, const Adapter& start,
                               const TrainingSpec& spec);

}  // namespace hearth::engine
