#include "engine/local_update.h"

#include <chrono>

#include "adapters/adapter_set.h"
#include "adapters/low_rank_product.h"
#include "core/error.h"
#include "engine/training_plan.h"
#include "engine/user_rows.h"
#include "storage/audit_log.h"
#include "storage/user_store.h"
#include "trainer/trainer.h"

namespace hearth::engine {

LocalUpdate train_local_update(storage::Vault& vault, LoadedModel& base, const std::string& base_name,
                               const std::string& actor, const std::string& user, const Adapter& start,
                               const TrainingSpec& spec) {
  const auto t0 = std::chrono::steady_clock::now();
  spec.validate();
  require(start.config().method == AdapterMethod::kLoRA, ErrorCode::kInvalidArgument,
          "federated rounds train LoRA adapters, not DoRA");
  const int64_t user_id = storage::UserStore(vault.db()).get(user).id;
  const UserRows rows = load_user_rows(vault, user, spec, *base.tokenizer);
  Decoder& decoder = *base.decoder;
  const MemoryPlan plan = plan_memory(decoder.config(), decoder.weight_bytes(), spec, start.parameter_count());
  trainer::TrainConfig cfg = train_config_of(spec, plan);
  cfg.eval_every = 0;

  trainer::Trainable trainable = trainer::Trainable::adapter(decoder, start.config());
  LocalUpdate update;
  trainer::TrainResult r;
  try {
    {
      at::NoGradGuard no_grad;
      const auto from = start.named_parameters();
      const auto& to = trainable.named_parameters();
      for (size_t i = 0; i < to.size(); ++i) to[i].second.copy_(from[i].second);
    }
    const at::Tensor before = lora_products(*trainable.adapter_ptr());
    r = trainer::train(decoder, trainable, rows.train, rows.eval, cfg, {base_name, base.fingerprint});
    update.delta = lora_products(*trainable.adapter_ptr()) - before;
  } catch (...) {
    detach_adapters(decoder);
    throw;
  }
  detach_adapters(decoder);
  require(r.completed, ErrorCode::kCancelled, "the local round was stopped before its last step");
  update.train_rows = rows.train.rows();
  update.trained_tokens = r.trained_tokens;
  update.eval_loss_before = r.eval_loss_before;
  update.eval_loss_after = r.eval_loss_after;
  update.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  storage::AuditLog(vault.db()).append(actor, "federated_train", user_id, r.trained_tokens,
                                       "steps=" + std::to_string(r.steps_done) + " (only a masked update left the device)");
  return update;
}

}  // namespace hearth::engine
