// `hearth train`: fine-tunes a LoRA / DoRA adapter (or, with --method full, every weight) on
// text, chat or prompt/completion files, with a progress bar, metrics, and resume after Ctrl-C;
// or, with --user, on a user's stored data as a foreground job of the engine, registering the
// adapter sealed in their vault. Runs inside the no-network sandbox unless --no-sandbox.
#include <cstdio>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/engine.h"
#include "engine/file_training.h"
#include "privacy/sandbox.h"
#include "trainer/distributed_options.h"
#include "trainer/stop_signal.h"

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

void print_privacy(const Json& privacy) {
  if (privacy.is_null()) return;
  std::printf("DP-SGD: epsilon %.3f at delta %g (sigma %.4f, clip %g, sampling rate %.5f, %lld steps)\n",
              privacy["epsilon"].get<double>(), privacy["delta"].get<double>(), privacy["sigma"].get<double>(),
              privacy["clip"].get<double>(), privacy["sampling_rate"].get<double>(),
              static_cast<long long>(privacy["steps"].get<int64_t>()));
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
  int64_t warmup = -1;  // -1: 10% of --steps
  trainer::TrainConfig cfg;
  std::string out;
  std::string user, key_file, adapter_name = "default";
  int64_t max_memory_mb = 0;
  bool no_sandbox = false;
  std::string init_adapter;
  // Data parallelism; unset flags fall back to torchrun's variables (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT).
  int world_size = 0, process_rank = -1;  // --rank is the adapter's rank
  std::string master;
  double dist_timeout = 60;

  void run() {
    require(data.empty() != user.empty(), ErrorCode::kInvalidArgument,
            "give --data FILE... or --user NAME (train on the user's stored data), not both or neither");
    require(model.adapter.empty(), ErrorCode::kInvalidArgument,
            "hearth train makes a new adapter and does not take --adapter (continue a stopped run with --resume)");
    cfg.warmup = warmup >= 0 ? warmup : cfg.steps / 10;
    if (user.empty()) return run_files();
    require(out.empty(), ErrorCode::kInvalidArgument,
            "--user keeps the adapter sealed in the user's vault; --out does not apply (export is not supported)");
    require(eval_data.empty(), ErrorCode::kInvalidArgument, "--eval-data applies to --data runs, not --user");
    require(!distributed_options().enabled(), ErrorCode::kUnsupported,
            "data-parallel training (--world-size) applies to --data runs; a --user job trains on one device");
    require(init_adapter.empty(), ErrorCode::kInvalidArgument, "--init-adapter applies to --data runs, not --user");
    require(method != "full", ErrorCode::kInvalidArgument, "--user trains adapters (lora, dora), not --method full");
    require(layers.empty(), ErrorCode::kInvalidArgument, "--layers applies to --data runs; a --user job adapts every layer");
    run_user();
  }

  void run_files() {
    require(!out.empty(), ErrorCode::kInvalidArgument, "--out is required with --data");
    engine::FileTrainingRequest r;
    r.base = model.base_spec();
    r.data.assign(data.begin(), data.end());
    r.eval_data.assign(eval_data.begin(), eval_data.end());
    r.data_options.eval_fraction = eval_fraction;
    r.data_options.split = trainer::parse_eval_split(eval_split);
    require(method == "lora" || method == "dora" || method == "full", ErrorCode::kInvalidArgument,
            "--method must be lora, dora or full, not \"" + method + "\"");
    r.full = method == "full";
    if (!r.full) r.adapter = adapter_config();
    r.config = cfg;
    r.config.out = out;
    r.config.grad_checkpoint = trainer::parse_grad_checkpoint(grad_checkpoint);
    r.config.optimizer = optimizer_config();
    r.sandbox = !no_sandbox;
    r.init_adapter = init_adapter;
    r.distributed = distributed_options();
    trainer::install_stop_signal_handlers();
    const engine::FileTrainingReport report = engine::train_on_files(r);
    Json j = report.to_json();
    j["adapter"] = out;
    j["optimizer"] = optim;
    const trainer::TrainResult& t = report.result;
    if (!t.completed && !t.checkpoint_saved) {
      print_json_result(j.dump());
      fail(ErrorCode::kCancelled, "training stopped before its first step; nothing was saved (run the same command again)");
    }
    if (!t.completed) {
      print_json_result(j.dump());
      fail(ErrorCode::kCancelled, "training stopped at step " + std::to_string(t.steps_done) + " of " +
                                      std::to_string(cfg.steps) + "; the checkpoint is in " + out +
                                      "/checkpoint; run the same command with --resume to continue");
    }
    std::printf("%s\n", t.summary_line().c_str());
    print_privacy(t.privacy);
    if (report.rank > 0) {
      std::printf("rank %d of %d finished; rank 0 saved the result to %s\n", report.rank, report.world_size, out.c_str());
    } else {
      std::printf("saved to %s\n", out.c_str());
    }
    print_json_result(j.dump());
  }

  // A foreground job: submitted (or, with --resume, the user's stopped one) and run to its end
  // in this process, with a progress bar; Ctrl-C pauses it with a sealed checkpoint.
  void run_user() {
    engine::Engine e(engine_options(key_file, /*with_key=*/true, !no_sandbox));
    e.load_base(model.base_spec());
    const int64_t job_id = cfg.resume ? stopped_job(e) : e.submit_job(job_spec());
    trainer::install_stop_signal_handlers();
    engine::SliceBudget budget;
    budget.steps = cfg.stop_after_steps;
    budget.progress_bar = true;
    const engine::SliceResult r = e.run_slice(job_id, budget);
    Json j{{"job_id", job_id}, {"outcome", r.outcome}, {"steps", r.steps_done}, {"method", method}, {"optimizer", optim}};
    if (r.outcome != "finished") {
      print_json_result(j.dump());
      fail(ErrorCode::kCancelled, "training stopped at step " + std::to_string(r.steps_done) + " of " +
                                      std::to_string(cfg.steps) + "; the checkpoint is sealed in job " + std::to_string(job_id) +
                                      " (" + r.reason + "); run the same command with --resume to continue");
    }
    const storage::AdapterRecord& a = *r.adapter;
    for (const char* k : {"train_loss", "eval_ppl_before", "eval_ppl_after", "tokens_per_s", "peak_rss_mb", "privacy",
                          "trainable_parameters", "optimizer_state_bytes", "memory_plan"})
      if (a.metrics.contains(k)) j[k] = a.metrics[k];
    j["adapter"] = a.name;
    j["adapter_id"] = a.id;
    j["adapter_version"] = a.version;
    j["adapter_file"] = a.file_path;
    j["adapter_sha256"] = a.sha256;
    j["sandbox"] = privacy::in_no_network_sandbox();
    j["sockets_blocked"] = privacy::in_no_network_sandbox() && privacy::socket_creation_blocked();
    std::printf("%s\n", trainer::TrainResult::from_json(a.metrics).summary_line().c_str());
    print_privacy(a.metrics.value("privacy", Json()));
    std::printf("registered adapter \"%s\" version %lld (id %lld) for user \"%s\", sealed in %s\n", a.name.c_str(),
                static_cast<long long>(a.version), static_cast<long long>(a.id), user.c_str(), a.file_path.c_str());
    print_json_result(j.dump());
  }

  // The user's most recent paused training job (what --resume continues).
  int64_t stopped_job(engine::Engine& e) const {
    int64_t found = 0;
    for (const engine::JobInfo& job : e.jobs(user))
      if (job.status == "paused") found = job.id;
    require(found != 0, ErrorCode::kNotFound, "user \"" + user + "\" has no stopped training job to resume; run without --resume");
    return found;
  }

  engine::JobSpec job_spec() const {
    engine::JobSpec s;
    s.user = user;
    s.base = model.base_spec();
    engine::TrainingSpec& t = s.training;
    t.method = method;
    t.rank = rank;
    t.alpha = alpha;
    t.rslora = rslora;
    t.dropout = dropout;
    t.targets = targets;
    t.optimizer = optim;
    t.steps = cfg.steps;
    t.seq_len = cfg.seq_len;
    t.batch = cfg.batch * cfg.grad_accum;
    t.lr = cfg.lr;
    t.warmup = cfg.warmup;
    t.eval_fraction = eval_fraction;
    t.eval_every = cfg.eval_every;
    t.eval_max_rows = cfg.eval_max_rows;
    t.seed = cfg.seed;
    t.dp = cfg.dp;
    t.checkpoint_every = cfg.checkpoint_every;
    t.max_memory_mb = max_memory_mb;
    t.adapter_name = adapter_name;
    // A foreground run on a laptop: the device policy does not apply.
    s.policy.run_on_battery = true;
    s.policy.min_battery_percent = 0;
    s.policy.require_screen_off = false;
    s.policy.max_temperature_c = 150;
    return s;
  }

  trainer::DistributedOptions distributed_options() const {
    trainer::DistributedOptions d = trainer::distributed_options_from_environment({});
    if (world_size > 0) d.world_size = world_size;
    if (process_rank >= 0) d.rank = process_rank;
    if (!master.empty()) std::tie(d.master_addr, d.master_port) = trainer::parse_host_port(master, "--master");
    d.timeout_seconds = dist_timeout;
    d.validate();
    return d;
  }

  optim::OptimizerConfig optimizer_config() const {
    optim::OptimizerConfig o;
    o.name = optim;
    o.weight_decay = weight_decay;
    o.seed = cfg.seed;
    o.lr = cfg.lr;
    if (apollo_rank > 0) o.apollo_rank = apollo_rank;
    o.apollo_update_gap = apollo_update_gap;
    if (apollo_scale > 0) o.apollo_scale = apollo_scale;
    return o;
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

CommandRegistration train_command("train", [](CLI::App& app) {
  auto cmd = std::make_shared<TrainCommand>();
  auto& c = cmd->cfg;
  CLI::App* sub = app.add_subcommand("train", "fine-tune an adapter (LoRA / DoRA) or the whole model on text or chat data");
  cmd->model.add_to(*sub, /*with_adapter=*/false);
  sub->add_option("--data", cmd->data, "text files, folders, chat JSONL or prompt/completion JSONL");
  sub->add_option("--out", cmd->out, "with --data: folder for the adapter, metrics.jsonl, loss_curve.svg and checkpoints");
  sub->add_option("--user", cmd->user, "train on this user's stored data; the adapter is sealed into their vault");
  sub->add_option("--key-file", cmd->key_file, "with --user: unlock with this key file (mode 600) instead of a passphrase");
  sub->add_option("--name", cmd->adapter_name, "with --user: the adapter's name in the registry (versions count up)")
      ->capture_default_str();
  sub->add_option("--max-memory-mb", cmd->max_memory_mb,
                  "with --user: plan micro-batches and checkpointing to stay under this many MB (0: no ceiling)")
      ->capture_default_str();
  sub->add_flag("--no-sandbox", cmd->no_sandbox, "allow sockets (by default training runs with socket creation forbidden)");
  sub->add_option("--dp-clip", c.dp.clip, "DP-SGD: clip each row's gradient to this L2 norm")->capture_default_str();
  sub->add_option("--dp-noise", c.dp.noise, "DP-SGD: noise multiplier sigma (turns DP-SGD on)");
  sub->add_option("--dp-epsilon", c.dp.epsilon, "DP-SGD: target epsilon for the run; sigma is solved for it (turns DP-SGD on)");
  sub->add_option("--dp-delta", c.dp.delta, "DP-SGD: delta of the reported (epsilon, delta)")->capture_default_str();
  sub->add_option("--dp-seed", c.dp.seed, "DP-SGD: fixed seed of sampling and noise, for experiments only (default: random)");
  sub->add_option("--method", cmd->method, "what to train")->check(CLI::IsMember({"lora", "dora", "full"}))->capture_default_str();
  sub->add_flag("--rslora", cmd->rslora, "scale adapters by alpha/sqrt(rank) instead of alpha/rank");
  sub->add_option("--rank", cmd->rank, "adapter rank")->capture_default_str();
  sub->add_option("--alpha", cmd->alpha, "adapter alpha")->capture_default_str();
  sub->add_option("--lora-dropout", cmd->dropout, "dropout on the adapter input")->capture_default_str();
  sub->add_option("--targets", cmd->targets, "projections: q,k,v,o,gate,up,down or all")->capture_default_str();
  sub->add_option("--layers", cmd->layers, "layer range A-B (default: all)");
  sub->add_option("--optim", cmd->optim, "optimizer")->check(CLI::IsMember({"adamw", "apollo", "apollo-mini"}))->capture_default_str();
  sub->add_option("--apollo-rank", cmd->apollo_rank, "APOLLO projection rank (default: relative to each matrix; apollo-mini 1)");
  sub->add_option("--apollo-update-gap", cmd->apollo_update_gap, "steps between new APOLLO projections")->capture_default_str();
  sub->add_option("--apollo-scale", cmd->apollo_scale, "APOLLO update scale (default 1, apollo-mini 128)");
  sub->add_option("--weight-decay", cmd->weight_decay, "decoupled weight decay")->capture_default_str();
  sub->add_option("--steps", c.steps, "optimizer updates")->capture_default_str();
  sub->add_option("--seq-len", c.seq_len, "positions per packed row")->capture_default_str();
  sub->add_option("--batch", c.batch, "rows per micro-batch")->capture_default_str();
  sub->add_option("--grad-accum", c.grad_accum, "micro-batches per update")->capture_default_str();
  sub->add_option("--lr", c.lr, "peak learning rate")->capture_default_str();
  sub->add_option("--warmup", cmd->warmup, "linear warm-up steps, then cosine decay (default: 10% of --steps)");
  sub->add_option("--min-lr-ratio", c.min_lr_ratio, "final learning rate as a share of --lr")->capture_default_str();
  sub->add_option("--max-grad-norm", c.max_grad_norm, "clip the global gradient norm (0: off)")->capture_default_str();
  sub->add_option("--eval-every", c.eval_every, "steps between held-out evaluations (0: before and after only)")
      ->capture_default_str();
  sub->add_option("--eval-data", cmd->eval_data, "held-out files or folders (then --data is trained on whole)");
  sub->add_option("--eval-fraction", cmd->eval_fraction, "share of the data held out")->capture_default_str();
  sub->add_option("--eval-split", cmd->eval_split, "how the held-out share is chosen: tail (last share of each file) or hash")
      ->check(CLI::IsMember({"tail", "hash"}))
      ->capture_default_str();
  sub->add_option("--eval-max-rows", c.eval_max_rows, "held-out rows per evaluation (0: all)")->capture_default_str();
  sub->add_option("--patience", c.patience, "early stopping after N evaluations without improvement (0: off)")
      ->capture_default_str();
  sub->add_option("--seed", c.seed, "seed of data order, dropout, adapter init and APOLLO")->capture_default_str();
  sub->add_option("--grad-checkpoint", cmd->grad_checkpoint, "gradient checkpointing")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  sub->add_option("--checkpoint-every", c.checkpoint_every, "also checkpoint every N steps (0: only when stopped)")
      ->capture_default_str();
  sub->add_option("--stop-after", c.stop_after_steps, "stop with a checkpoint after N steps (a time slice)");
  sub->add_option("--init-adapter", cmd->init_adapter,
                  "with --data: start from this adapter folder (e.g. a federation's population adapter) instead of a fresh one");
  sub->add_option("--world-size", cmd->world_size, "data-parallel processes (default: $WORLD_SIZE or 1)");
  sub->add_option("--process-rank", cmd->process_rank,
                  "this process's place in a data-parallel run, 0 .. world size - 1 (default: $RANK or 0; --rank is the adapter's)");
  sub->add_option("--master", cmd->master, "rank 0's rendezvous ADDR:PORT (default: $MASTER_ADDR:$MASTER_PORT or 127.0.0.1:29500)");
  sub->add_option("--dist-timeout", cmd->dist_timeout, "seconds a rank waits for its peers before failing")->capture_default_str();
  sub->add_flag("--resume", c.resume, "continue from --out/checkpoint (with --user: the user's stopped job)");
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
