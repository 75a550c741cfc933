// `hearth train`: fine-tunes a LoRA / DoRA adapter (or, with --method full, every weight) on
// text, chat or prompt/completion files, with a progress bar, metrics, and resume after Ctrl-C;
// or, with --user, on a user's stored data, registering the adapter sealed in their vault.
// Runs inside the no-network sandbox unless --no-sandbox.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "adapters/adapter.h"
#include "adapters/adapter_bundle.h"
#include "adapters/adapter_config.h"
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "privacy/passphrase_prompt.h"
#include "privacy/sandbox.h"
#include "privacy/secret_key.h"
#include "storage/adapter_registry.h"
#include "storage/backup.h"
#include "storage/hearth_home.h"
#include "storage/job_store.h"
#include "storage/user_data.h"
#include "storage/vault.h"
#include "trainer/packing.h"
#include "trainer/stop_signal.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"
#include "trainer/user_training_data.h"

namespace hearth::cli {
namespace {

// "A-B" or "A" -> inclusive layer range.
std::pair<int64_t, int64_t> parse_layers(const std::string& s) {
  try {
    const size_t dash = s.find('-');
    if (dash == std::string::npos) return {std::stoll(s), std::stoll(s)};
    return {std::stoll(s.substr(0, dash)), std::stoll(s.substr(dash + 1))};
  } catch (const std::exception&) {
    fail(ErrorCode::kInvalidArgument, "--layers must look like 0-5 or 3, not \"" + s + "\"");
  }
}

struct TrainCommand {
  ModelOptions model;
  std::vector<std::string> data;
  std::vector<std::string> eval_data;  // held-out files; when given, all of --data is trained on
  std::string method = "lora";
  bool rslora = false;
  int64_t rank = 8;
  double alpha = 16;
  double dropout = 0.0;
  std::string targets = "all";
  std::string layers;
  std::string optim = "adamw";
  int apollo_rank = 0;
  int apollo_update_gap = 200;
  double apollo_scale = 0;
  double weight_decay = 0;
  double eval_fraction = 0.1;
  std::string eval_split = "tail";
  std::string grad_checkpoint = "auto";
  trainer::TrainConfig cfg;
  std::string out;
  // Training on a user's stored data instead of --data files.
  std::string user, home, key_file, adapter_name = "default";
  bool no_sandbox = false;
  std::unique_ptr<storage::JobStore> jobs;  // with --user: the run's job and its sealed checkpoints
  int64_t job_id = 0;

  void run() {
    require(data.empty() != user.empty(), ErrorCode::kInvalidArgument,
            "give --data FILE... or --user NAME (train on the user's stored data), not both or neither");
    require(user.empty() || out.empty(), ErrorCode::kInvalidArgument,
            "--user keeps the adapter sealed in the user's vault; --out does not apply (export is not supported)");
    require(!user.empty() || !out.empty(), ErrorCode::kInvalidArgument, "--out is required with --data");
    require(user.empty() || eval_data.empty(), ErrorCode::kInvalidArgument, "--eval-data applies to --data runs, not --user");
    require(user.empty() || method != "full", ErrorCode::kInvalidArgument, "--user trains adapters (lora, dora), not --method full");
    cfg.out = out;
    cfg.in_memory = !user.empty();
    if (cfg.in_memory) {
      // Checkpoints are sealed into the user's folder as they are made; --resume opens the latest.
      cfg.save_checkpoint = [this](int64_t step, const std::string& bytes) { jobs->add_checkpoint(job_id, step, bytes); };
      cfg.load_checkpoint = [this] {
        std::optional<storage::CheckpointRecord> c = jobs->latest_checkpoint(job_id);
        require(c.has_value(), ErrorCode::kNotFound, "training job " + std::to_string(job_id) + " has no checkpoint to resume from");
        return jobs->open_checkpoint(*c);
      };
    }
    cfg.grad_checkpoint = trainer::parse_grad_checkpoint(grad_checkpoint);
    cfg.optimizer.name = optim;
    cfg.optimizer.weight_decay = weight_decay;
    cfg.optimizer.seed = cfg.seed;
    cfg.optimizer.lr = cfg.lr;
    if (apollo_rank > 0) cfg.optimizer.apollo_rank = apollo_rank;
    cfg.optimizer.apollo_update_gap = apollo_update_gap;
    if (apollo_scale > 0) cfg.optimizer.apollo_scale = apollo_scale;
    cfg.validate();
    if (method != "full") adapter_config().validate();  // --rank, --alpha, ... refused before any work
    require(model.adapter.empty(), ErrorCode::kInvalidArgument,
            "hearth train makes a new adapter and does not take --adapter (continue a stopped run with --resume)");
    require(method == "lora" || method == "dora" || method == "full", ErrorCode::kInvalidArgument,
            "--method must be lora, dora or full, not \"" + method + "\"");

    LoadedModel m = model.load();
    cfg.validate_for_model(m.decoder->config());  // --seq-len within the model's context, before packing
    trainer::DataOptions data_options;
    data_options.eval_fraction = eval_fraction;
    data_options.split = trainer::parse_eval_split(eval_split);
    // Files and the database are open before the sandbox closes the network; no user data is
    // read before it.
    std::unique_ptr<storage::Vault> vault;
    if (!user.empty()) vault = std::make_unique<storage::Vault>(storage::resolve_home(home), privacy::master_key_source_for_cli(key_file));
    if (!no_sandbox) privacy::enter_no_network_sandbox();
    trainer::TrainingData docs;
    int64_t user_id = 0;
    if (vault) {
      storage::UserData stored = storage::load_user_data(vault->db(), vault->keyring(), user);
      user_id = stored.user_id;
      docs = trainer::user_training_data(stored, *m.tokenizer, data_options);
      // The decrypted text is no longer needed; do not leave it in freed memory.
      for (std::string& d : stored.documents) privacy::wipe(d);
      for (storage::TrainingExample& e : stored.examples) {
        for (storage::ChatMessage& msg : e.messages) privacy::wipe(msg.content);
        privacy::wipe(e.prompt);
        privacy::wipe(e.completion);
      }
    } else {
      std::vector<std::filesystem::path> paths(data.begin(), data.end());
      if (!eval_data.empty()) data_options.eval_fraction = 0;  // held out: the --eval-data files, whole
      docs = trainer::load_training_data(paths, *m.tokenizer, data_options);
      if (!eval_data.empty()) {
        std::vector<std::filesystem::path> eval_paths(eval_data.begin(), eval_data.end());
        docs.eval = trainer::load_training_data(eval_paths, *m.tokenizer, data_options).train;
      }
    }
    trainer::PackedRows train_rows = trainer::pack_documents(docs.train, cfg.seq_len);
    trainer::PackedRows eval_rows = trainer::pack_documents(docs.eval, cfg.seq_len);
    spdlog::info("data: {} training rows ({} trained tokens), {} held-out rows of {} positions", train_rows.rows(),
                 train_rows.trained_tokens(), eval_rows.rows(), cfg.seq_len);

    trainer::Trainable trainable = method == "full" ? trainer::Trainable::full(*m.decoder)
                                                    : trainer::Trainable::adapter(*m.decoder, adapter_config());
    spdlog::info("training {} parameters ({}) with {}", trainable.parameter_count(), trainable.method(),
                 cfg.optimizer.describe());
    trainer::install_stop_signal_handlers();
    if (vault) {
      jobs = std::make_unique<storage::JobStore>(vault->db(), vault->keyring(), vault->home());
      job_id = cfg.resume ? paused_job(*jobs, user_id) : jobs->create(user_id, "train", cfg.identity()).id;
      jobs->set_status(job_id, "running");
    }
    trainer::TrainResult r;
    try {
      r = trainer::train(*m.decoder, trainable, train_rows, eval_rows, cfg, {model.model, m.fingerprint});
    } catch (...) {
      if (jobs) jobs->set_status(job_id, "failed");
      throw;
    }
    Json j = r.to_json();
    j["sandbox"] = privacy::in_no_network_sandbox();
    j["sockets_blocked"] = privacy::in_no_network_sandbox() && privacy::socket_creation_blocked();
    if (vault && r.completed) {
      jobs->set_status(job_id, "done");
      const storage::AdapterRecord rec = register_adapter(*vault, user_id, trainable, m, r);
      storage::back_up_after_job(vault->db());  // the last good state, for `hearth doctor --restore`
      j["adapter"] = rec.name;
      j["adapter_id"] = rec.id;
      j["adapter_version"] = rec.version;
      j["adapter_file"] = rec.file_path;
      j["adapter_sha256"] = rec.sha256;
      j["job_id"] = job_id;
    } else if (vault) {
      jobs->set_status(job_id, "paused");
      j["job_id"] = job_id;
    } else {
      j["adapter"] = out;
    }
    j["method"] = trainable.method();
    j["optimizer"] = optim;
    j["trainable_parameters"] = trainable.parameter_count();
    if (!r.completed && vault) {
      print_json_result(j.dump());
      fail(ErrorCode::kCancelled, "training stopped at step " + std::to_string(r.steps_done) + " of " +
                                      std::to_string(cfg.steps) + "; the checkpoint is sealed in job " + std::to_string(job_id) +
                                      "; run the same command with --resume to continue");
    }
    if (!r.completed) {
      print_json_result(j.dump());
      fail(ErrorCode::kCancelled, "training stopped at step " + std::to_string(r.steps_done) + " of " +
                                      std::to_string(cfg.steps) + "; the checkpoint is in " + out +
                                      "/checkpoint; run the same command with --resume to continue");
    }
    std::printf("%s\n", r.summary_line().c_str());
    if (!r.privacy.is_null()) {
      std::printf("DP-SGD: epsilon %.3f at delta %g (sigma %.4f, clip %g, sampling rate %.5f, %lld steps)\n",
                  r.privacy["epsilon"].get<double>(), r.privacy["delta"].get<double>(), r.privacy["sigma"].get<double>(),
                  r.privacy["clip"].get<double>(), r.privacy["sampling_rate"].get<double>(),
                  static_cast<long long>(r.privacy["steps"].get<int64_t>()));
    }
    if (vault) {
      std::printf("registered adapter \"%s\" version %lld (id %lld) for user \"%s\", sealed in %s\n",
                  j["adapter"].get<std::string>().c_str(), static_cast<long long>(j["adapter_version"].get<int64_t>()),
                  static_cast<long long>(j["adapter_id"].get<int64_t>()), user.c_str(),
                  j["adapter_file"].get<std::string>().c_str());
    } else {
      std::printf("saved to %s\n", out.c_str());
    }
    print_json_result(j.dump());
  }

  // The user's most recent paused training job (what --resume continues).
  int64_t paused_job(storage::JobStore& jobs, int64_t user_id) const {
    int64_t found = 0;
    for (const storage::JobRecord& job : jobs.list(user_id))
      if (job.kind == "train" && job.status == "paused") found = job.id;
    require(found != 0, ErrorCode::kNotFound, "user \"" + user + "\" has no stopped training job to resume; run without --resume");
    return found;
  }

  // Seals the adapter (built as one safetensors bundle in memory) into the user's vault as the
  // next version of --name, with what it was made from and its metrics.
  storage::AdapterRecord register_adapter(storage::Vault& vault, int64_t user_id, const trainer::Trainable& trainable,
                                          const LoadedModel& m, const trainer::TrainResult& r) const {
    Json summary = r.to_json();
    summary["method"] = trainable.method();
    summary["trainable_parameters"] = trainable.parameter_count();
    summary["config"] = cfg.identity();
    std::string bundle = adapter_to_bundle(*trainable.adapter_ptr(), model.model, m.fingerprint, summary);
    storage::AdapterRecord meta;
    meta.user_id = user_id;
    meta.name = adapter_name;
    meta.method = trainable.method();
    meta.rank = trainable.adapter_ptr()->config().rank;
    meta.targets = trainable.adapter_ptr()->config().targets;
    meta.base_fingerprint = m.fingerprint;
    meta.metrics = summary;
    storage::AdapterRegistry registry(vault.db(), vault.keyring(), vault.home());
    storage::AdapterRecord rec = registry.add(meta, bundle);
    privacy::wipe(bundle);
    return rec;
  }

  AdapterConfig adapter_config() const {
    AdapterConfig a;
    a.method = parse_adapter_method(method);
    a.rank = rank;
    a.alpha = alpha;
    a.rslora = rslora;
    a.dropout = dropout;
    a.targets = AdapterConfig::parse_targets(targets);
    if (!layers.empty()) std::tie(a.first_layer, a.last_layer) = parse_layers(layers);
    a.seed = cfg.seed;
    return a;
  }
};

CommandRegistration registration("train", [](CLI::App& app) {
  auto cmd = std::make_shared<TrainCommand>();
  auto& c = cmd->cfg;
  CLI::App* sub = app.add_subcommand("train", "fine-tune an adapter (LoRA / DoRA) or the whole model on text or chat data");
  cmd->model.add_to(*sub, /*with_adapter=*/false);
  sub->add_option("--data", cmd->data, "text files, folders, chat JSONL or prompt/completion JSONL");
  sub->add_option("--out", cmd->out, "with --data: folder for the adapter, metrics.jsonl, loss_curve.svg and checkpoints");
  sub->add_option("--user", cmd->user, "train on this user's stored data; the adapter is sealed into their vault");
  sub->add_option("--home", cmd->home, "with --user: Hearth home folder (default: $HEARTH_HOME or ~/.hearth)");
  sub->add_option("--key-file", cmd->key_file, "with --user: unlock with this key file (mode 600) instead of a passphrase");
  sub->add_option("--name", cmd->adapter_name, "with --user: the adapter's name in the registry (versions count up)")
      ->capture_default_str();
  sub->add_flag("--no-sandbox", cmd->no_sandbox, "allow sockets (by default training runs with socket creation forbidden)");
  sub->add_option("--dp-clip", c.dp.clip, "DP-SGD: clip each row's gradient to this L2 norm")->capture_default_str();
  sub->add_option("--dp-noise", c.dp.noise, "DP-SGD: noise multiplier sigma (turns DP-SGD on)");
  sub->add_option("--dp-epsilon", c.dp.epsilon, "DP-SGD: target epsilon for the run; sigma is solved for it (turns DP-SGD on)");
  sub->add_option("--dp-delta", c.dp.delta, "DP-SGD: delta of the reported (epsilon, delta)")->capture_default_str();
  sub->add_option("--dp-seed", c.dp.seed, "DP-SGD: fixed seed of sampling and noise, for experiments only (default: random)");
  sub->add_option("--method", cmd->method, "lora, dora or full")->capture_default_str();
  sub->add_flag("--rslora", cmd->rslora, "scale adapters by alpha/sqrt(rank) instead of alpha/rank");
  sub->add_option("--rank", cmd->rank, "adapter rank")->capture_default_str();
  sub->add_option("--alpha", cmd->alpha, "adapter alpha")->capture_default_str();
  sub->add_option("--lora-dropout", cmd->dropout, "dropout on the adapter input")->capture_default_str();
  sub->add_option("--targets", cmd->targets, "projections: q,k,v,o,gate,up,down or all")->capture_default_str();
  sub->add_option("--layers", cmd->layers, "layer range A-B (default: all)");
  sub->add_option("--optim", cmd->optim, "adamw, apollo or apollo-mini")->capture_default_str();
  sub->add_option("--apollo-rank", cmd->apollo_rank, "APOLLO projection rank (default 256, apollo-mini 1)");
  sub->add_option("--apollo-update-gap", cmd->apollo_update_gap, "steps between new APOLLO projections")->capture_default_str();
  sub->add_option("--apollo-scale", cmd->apollo_scale, "APOLLO update scale (default 1, apollo-mini 128)");
  sub->add_option("--weight-decay", cmd->weight_decay, "decoupled weight decay")->capture_default_str();
  sub->add_option("--steps", c.steps, "optimizer updates")->capture_default_str();
  sub->add_option("--seq-len", c.seq_len, "positions per packed row")->capture_default_str();
  sub->add_option("--batch", c.batch, "rows per micro-batch")->capture_default_str();
  sub->add_option("--grad-accum", c.grad_accum, "micro-batches per update")->capture_default_str();
  sub->add_option("--lr", c.lr, "peak learning rate")->capture_default_str();
  sub->add_option("--warmup", c.warmup, "linear warm-up steps (then cosine decay)")->capture_default_str();
  sub->add_option("--min-lr-ratio", c.min_lr_ratio, "final learning rate as a share of --lr")->capture_default_str();
  sub->add_option("--max-grad-norm", c.max_grad_norm, "clip the global gradient norm (0: off)")->capture_default_str();
  sub->add_option("--eval-every", c.eval_every, "steps between held-out evaluations (0: before and after only)")
      ->capture_default_str();
  sub->add_option("--eval-data", cmd->eval_data, "held-out files or folders (then --data is trained on whole)");
  sub->add_option("--eval-fraction", cmd->eval_fraction, "share of the data held out")->capture_default_str();
  sub->add_option("--eval-split", cmd->eval_split, "tail (last share of each file) or hash (by content)")
      ->capture_default_str();
  sub->add_option("--eval-max-rows", c.eval_max_rows, "held-out rows per evaluation (0: all)")->capture_default_str();
  sub->add_option("--patience", c.patience, "early stopping after N evaluations without improvement (0: off)")
      ->capture_default_str();
  sub->add_option("--seed", c.seed, "seed of data order, dropout, adapter init and APOLLO")->capture_default_str();
  sub->add_option("--grad-checkpoint", cmd->grad_checkpoint, "auto, on or off")->capture_default_str();
  sub->add_option("--checkpoint-every", c.checkpoint_every, "also checkpoint every N steps (0: only when stopped)")
      ->capture_default_str();
  sub->add_option("--stop-after", c.stop_after_steps, "stop with a checkpoint after N steps (a time slice)");
  sub->add_flag("--resume", c.resume, "continue from --out/checkpoint");
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
