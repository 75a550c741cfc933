// `hearth train`: fine-tunes a LoRA / DoRA adapter (or, with --method full, every weight) on
// text, chat or prompt/completion files, with a progress bar, metrics, and resume after Ctrl-C.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "adapters/adapter_config.h"
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "trainer/packing.h"
#include "trainer/stop_signal.h"
#include "trainer/trainer.h"
#include "trainer/training_data.h"

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

  void run() {
    cfg.out = out;
    cfg.grad_checkpoint = trainer::parse_grad_checkpoint(grad_checkpoint);
    cfg.optimizer.name = optim;
    cfg.optimizer.weight_decay = weight_decay;
    cfg.optimizer.seed = cfg.seed;
    cfg.optimizer.lr = cfg.lr;
    if (apollo_rank > 0) cfg.optimizer.apollo_rank = apollo_rank;
    cfg.optimizer.apollo_update_gap = apollo_update_gap;
    if (apollo_scale > 0) cfg.optimizer.apollo_scale = apollo_scale;
    cfg.validate();
    require(model.adapter.empty(), ErrorCode::kInvalidArgument,
            "hearth train makes a new adapter and does not take --adapter (continue a stopped run with --resume)");
    require(method == "lora" || method == "dora" || method == "full", ErrorCode::kInvalidArgument,
            "--method must be lora, dora or full, not \"" + method + "\"");

    LoadedModel m = model.load();
    trainer::DataOptions data_options;
    data_options.eval_fraction = eval_fraction;
    data_options.split = trainer::parse_eval_split(eval_split);
    std::vector<std::filesystem::path> paths(data.begin(), data.end());
    trainer::TrainingData docs = trainer::load_training_data(paths, *m.tokenizer, data_options);
    trainer::PackedRows train_rows = trainer::pack_documents(docs.train, cfg.seq_len);
    trainer::PackedRows eval_rows = trainer::pack_documents(docs.eval, cfg.seq_len);
    spdlog::info("data: {} training rows ({} trained tokens), {} held-out rows of {} positions", train_rows.rows(),
                 train_rows.trained_tokens(), eval_rows.rows(), cfg.seq_len);

    trainer::Trainable trainable = method == "full" ? trainer::Trainable::full(*m.decoder)
                                                    : trainer::Trainable::adapter(*m.decoder, adapter_config());
    spdlog::info("training {} parameters ({}) with {}", trainable.parameter_count(), trainable.method(),
                 cfg.optimizer.describe());
    trainer::install_stop_signal_handlers();
    trainer::TrainResult r = trainer::train(*m.decoder, trainable, train_rows, eval_rows, cfg, {model.model, m.fingerprint});
    Json j = r.to_json();
    j["adapter"] = out;
    j["method"] = trainable.method();
    j["optimizer"] = optim;
    j["trainable_parameters"] = trainable.parameter_count();
    if (!r.completed) {
      print_json_result(j.dump());
      fail(ErrorCode::kCancelled, "training stopped at step " + std::to_string(r.steps_done) + " of " +
                                      std::to_string(cfg.steps) + "; the checkpoint is in " + out +
                                      "/checkpoint; run the same command with --resume to continue");
    }
    std::printf("trained %lld steps: train loss %.4f, held-out perplexity %.3f -> %.3f, %.0f tokens/s, peak RSS %.0f MB\n",
                static_cast<long long>(r.steps_done), r.train_loss, r.eval_ppl_before, r.eval_ppl_after, r.tokens_per_s,
                r.peak_rss_mb);
    std::printf("saved to %s\n", out.c_str());
    print_json_result(j.dump());
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
  sub->add_option("--data", cmd->data, "text files, folders, chat JSONL or prompt/completion JSONL")->required();
  sub->add_option("--out", cmd->out, "folder for the adapter, metrics.jsonl, loss_curve.svg and checkpoints")->required();
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
