#include "trainer/trainer.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>

#include "adapters/adapter.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "optim/make_optimizer.h"
#include "privacy/secret_key.h"
#include "trainer/checkpointed_forward.h"
#include "trainer/gradient_sync.h"
#include "trainer/chunked_loss.h"
#include "trainer/interruption.h"
#include "trainer/loss_curve_svg.h"
#include "trainer/lr_schedule.h"
#include "trainer/private_step.h"
#include "trainer/process_group.h"
#include "trainer/progress_bar.h"
#include "trainer/stop_signal.h"
#include "trainer/training_checkpoint.h"

namespace hearth::trainer {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// The seeded order rows are visited in: a fresh permutation per epoch.
class RowOrder {
 public:
  RowOrder(int64_t rows, uint64_t seed) : rows_(rows), seed_(seed) {}
  int64_t row(int64_t cursor) {
    const int64_t epoch = cursor / rows_;
    if (epoch != epoch_) {
      at::Generator gen = make_generator(mix_seed(seed_, uint64_t(epoch) + 1000));
      perm_ = at::randperm(rows_, gen, at::kLong);
      epoch_ = epoch;
    }
    return perm_.data_ptr<int64_t>()[cursor % rows_];
  }

 private:
  int64_t rows_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  at::Tensor perm_;
};

struct StepStats {
  double loss_sum = 0;  // summed weighted loss of the step's rows
  double tokens = 0;    // trained targets in them
  double grad_norm = 0;
};

struct MicroBatch {
  ForwardInput input;
  at::Tensor targets, weights;
};

MicroBatch gather_rows(const PackedRows& rows, const at::Tensor& index) {
  MicroBatch b;
  b.input.tokens = rows.tokens.index_select(0, index);
  b.input.positions = rows.positions.index_select(0, index);
  b.input.segments = rows.segments.index_select(0, index);
  b.targets = rows.targets.index_select(0, index).reshape({-1});
  b.weights = rows.weights.index_select(0, index).reshape({-1});
  return b;
}

// Summed (not averaged) weighted loss of a micro-batch; differentiable.
at::Tensor micro_batch_loss(const Decoder& decoder, const MicroBatch& b, bool checkpoint,
                            const std::vector<at::Generator>& replay, int64_t recompute_rows = 0) {
  at::Tensor hidden = training_hidden_states(decoder, b.input, checkpoint, replay, recompute_rows);
  return chunked_cross_entropy(decoder, hidden.reshape({-1, hidden.size(-1)}), b.targets, b.weights);
}

// Scales every gradient so their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm) {
  double sq = 0;
  for (const auto& [name, p] : params) {
    if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [name, p] : params) {
      if (p.grad().defined()) p.mutable_grad().mul_(scale);
    }
  }
  return norm;
}

// The generators whose state a run's result depends on: the default CPU generator and the
// adapter's dropout generator.
std::vector<at::Generator> run_generators(Trainable& trainable) {
  std::vector<at::Generator> gens{at::detail::getDefaultCPUGenerator()};
  if (trainable.adapter_ptr()) gens.push_back(trainable.adapter_ptr()->dropout_generator());
  return gens;
}

std::vector<at::Tensor> generator_states(const std::vector<at::Generator>& generators) {
  std::vector<at::Tensor> states;
  for (const at::Generator& g : generators) states.push_back(g.get_state());
  return states;
}

void restore_generator_states(std::vector<at::Generator>& generators, const std::vector<at::Tensor>& states) {
  for (size_t i = 0; i < generators.size(); ++i) generators[i].set_state(states[i]);
}

// metrics.jsonl: one JSON object per line, appended and flushed as the run goes.
class MetricsLog {
 public:
  // An empty path keeps the lines in memory only.
  MetricsLog(const fs::path& path, bool resume, int64_t resume_step) : path_(path) {
    if (path.empty()) return;
    if (resume && fs::exists(path)) {
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
        // Lines after the checkpoint's step were written by the stopped run past its last checkpoint.
        if (j.is_object() && j.value("step", int64_t(0)) <= resume_step) lines_.push_back(j);
      }
    }
    std::string all;
    for (const Json& j : lines_) all += j.dump() + "\n";
    write_file_atomic(path, all);
    out_.open(path, std::ios::app);
  }
  void add(const Json& j) {
    lines_.push_back(j);
    if (path_.empty()) return;
    out_ << j.dump() << "\n";
    out_.flush();
  }
  const std::vector<Json>& lines() const { return lines_; }

 private:
  fs::path path_;
  std::vector<Json> lines_;
  std::ofstream out_;
};

void write_loss_curve(const fs::path& path, const std::vector<Json>& lines, const std::string& title) {
  CurvePoints train, eval;
  for (const Json& j : lines) {
    if (j.contains("loss")) train.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
    if (j.contains("eval_loss")) eval.emplace_back(j["step"].get<double>(), j["eval_loss"].get<double>());
  }
  write_file_atomic(path, loss_curve_svg(train, eval, title));
}

// Every rank must train the same thing on the same data: rank 0's shapes are broadcast and
// compared, and a mismatch anywhere fails every rank with the same clear error.
void check_same_run(ProcessGroup& group, const PackedRows& train_rows, const PackedRows& eval_rows,
                    const Trainable& trainable, const TrainConfig& cfg) {
  const std::vector<int64_t> mine{train_rows.rows(), eval_rows.rows(),    trainable.parameter_count(), cfg.steps,
                                  cfg.batch,         cfg.grad_accum,      cfg.seq_len,                 int64_t(cfg.seed)};
  at::Tensor first = at::tensor(mine, at::kLong);
  group.broadcast(first, 0, "the start-up check");
  const bool same = at::equal(first, at::tensor(mine, at::kLong));
  std::vector<at::Tensor> mismatch{at::tensor({same ? int64_t(0) : int64_t(1)}, at::kLong)};
  group.allreduce_sum(mismatch, "the start-up check");
  require(mismatch[0].item<int64_t>() == 0, ErrorCode::kInvalidArgument,
          "the ranks of this data-parallel run disagree on the data or settings (training rows, held-out rows, "
          "parameters, steps, batch, grad-accum, seq-len, seed; rank " + std::to_string(group.rank()) + " has " +
              std::to_string(mine[0]) + " training rows, rank 0 " + std::to_string(first[0].item<int64_t>()) +
              "); start every rank with the same command and data");
}

// Whether any rank wants to stop: all stop together, between steps.
bool any_rank(ProcessGroup& group, bool mine) {
  std::vector<at::Tensor> flag{at::tensor({mine ? int64_t(1) : int64_t(0)}, at::kLong)};
  group.allreduce_sum(flag, "the stop check");
  return flag[0].item<int64_t>() > 0;
}

double sum_over_ranks(ProcessGroup* group, double value, const std::string& what) {
  if (!group) return value;
  std::vector<at::Tensor> v{at::tensor({value}, at::kDouble)};
  group->allreduce_sum(v, what);
  return v[0].item<double>();
}

// Rank 0 reads the checkpoint from disk and hands its bytes to every other rank through the
// rendezvous, so ranks on other machines resume without a shared folder.
LoopState resume_across_ranks(ProcessGroup& group, const fs::path& dir, Trainable& trainable, optim::Optimizer& optimizer,
                              std::vector<at::Generator>& generators, const Json& identity) {
  Rendezvous& r = group.rendezvous();
  if (group.rank() == 0) {
    LoopState st;
    try {
      st = load_training_checkpoint(dir, trainable, optimizer, generators, identity);
    } catch (const std::exception& e) {
      r.set("resume/status", std::string("error: ") + e.what());
      throw;
    }
    r.set("resume/checkpoint", training_checkpoint_bytes(trainable, optimizer, generators, st, identity));
    r.set("resume/status", "ok");
    return st;
  }
  const std::string status = r.get("resume/status", "rank 0's checkpoint");
  require(status == "ok", ErrorCode::kNotFound, "rank 0 could not resume: " + status.substr(std::min<size_t>(7, status.size())));
  return load_training_checkpoint_bytes(r.get("resume/checkpoint", "rank 0's checkpoint"), "rank 0's checkpoint", trainable,
                                        optimizer, generators, identity);
}

}  // namespace

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

bool auto_grad_checkpoint(const ModelConfig& m, int64_t batch, int64_t seq_len) {
  // Per block, autograd keeps roughly 10 hidden-sized and 3 intermediate-sized activations per
  // position, plus the attention scores and probabilities.
  const double per_block = double(batch) * seq_len * (10.0 * m.hidden_size + 3.0 * m.intermediate_size) * 4 +
                           2.0 * batch * m.num_heads * double(seq_len) * seq_len * 4;
  return per_block * m.num_layers > 256.0 * (1 << 20);
}

double evaluate_loss(const Decoder& decoder, Trainable& trainable, const PackedRows& rows, int64_t batch, int64_t max_rows,
                     ProcessGroup* group) {
  const int64_t n = max_rows > 0 ? std::min(max_rows, rows.rows()) : rows.rows();
  if (n == 0) return 0;
  trainable.set_training(false);
  at::NoGradGuard no_grad;
  // In a group each rank takes every size()-th micro-batch and the sums are added up.
  const int64_t first = group ? group->rank() * batch : 0, stride = group ? group->size() * batch : batch;
  double nll = 0, tokens = 0;
  for (int64_t r = first; r < n; r += stride) {
    MicroBatch b = gather_rows(rows, at::arange(r, std::min(n, r + batch), at::kLong));
    nll += micro_batch_loss(decoder, b, /*checkpoint=*/false, {}).item<double>();
    tokens += b.weights.sum().item<double>();
  }
  if (group) {
    std::vector<at::Tensor> sums{at::tensor({nll, tokens}, at::kDouble)};
    group->allreduce_sum(sums, "the held-out evaluation");
    nll = sums[0][0].item<double>();
    tokens = sums[0][1].item<double>();
  }
  trainable.set_training(true);
  return tokens > 0 ? nll / tokens : 0;
}

TrainResult train(Decoder& decoder, Trainable& trainable, const PackedRows& train_rows, const PackedRows& eval_rows,
                  const TrainConfig& cfg, const BaseModelInfo& base) {
  cfg.validate();
  cfg.validate_for_model(decoder.config());
  // Freed activations go back to the kernel, so the peak RSS follows the live tensors.
  ScopedMemoryPolicy memory_policy(MemoryPolicy::kBounded);
  require(train_rows.rows() > 0, ErrorCode::kInvalidArgument, "no training rows (the data is shorter than one sequence)");
  ProcessGroup* group = cfg.group && cfg.group->size() > 1 ? cfg.group.get() : nullptr;
  const int64_t world = group ? group->size() : 1, rank = group ? group->rank() : 0;
  const bool writer = rank == 0;  // the one process that writes metrics, checkpoints and the result
  if (eval_rows.rows() == 0 && writer) {
    spdlog::warn("no held-out rows (the held-out data is shorter than one --seq-len row of {} positions): held-out "
                 "perplexity will not be measured; give --eval-data, a larger --eval-fraction or a shorter --seq-len",
                 cfg.seq_len);
  }
  const fs::path checkpoint_dir = cfg.out / "checkpoint";
  const bool checkpoint = cfg.grad_checkpoint == GradCheckpoint::kOn ||
                          (cfg.grad_checkpoint == GradCheckpoint::kAuto &&
                           auto_grad_checkpoint(decoder.config(), cfg.batch, cfg.seq_len));

  // Seeds for everything: the default generator (anything drawn outside the adapter),
  // the adapter's dropout (seeded by the adapter from its config), APOLLO (cfg.optimizer.seed).
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(mix_seed(cfg.seed, 1));
  }
  optim::OptimizerConfig ocfg = cfg.optimizer;
  ocfg.lr = cfg.lr;
  std::unique_ptr<optim::Optimizer> optimizer = optim::make_optimizer(ocfg, trainable.param_groups());
  std::vector<at::Generator> generators = run_generators(trainable);
  // Backward recomputes a checkpointed block ~512 positions at a time, which is exact unless
  // the blocks draw random numbers (adapter dropout).
  const bool dropout = trainable.adapter_ptr() && trainable.adapter_ptr()->config().dropout > 0;
  const int64_t recompute_rows = dropout ? 0 : std::max<int64_t>(1, 512 / cfg.seq_len);
  std::unique_ptr<PrivateStep> dp;
  if (cfg.dp.enabled()) {
    dp = std::make_unique<PrivateStep>(cfg.dp, train_rows.rows(), cfg.batch * cfg.grad_accum, cfg.steps);
    generators.push_back(dp->generator());  // checkpointed with the others
  }
  const LrSchedule schedule{cfg.lr, cfg.warmup, cfg.steps, cfg.min_lr_ratio};
  const Json identity = cfg.identity();

  if (group) check_same_run(*group, train_rows, eval_rows, trainable, cfg);
  LoopState st;
  if (cfg.resume && group) {
    st = resume_across_ranks(*group, checkpoint_dir, trainable, *optimizer, generators, identity);
  } else if (cfg.resume) {
    st = cfg.in_memory ? load_training_checkpoint_bytes(cfg.load_checkpoint(), "the stored checkpoint", trainable, *optimizer,
                                                        generators, identity)
                       : load_training_checkpoint(checkpoint_dir, trainable, *optimizer, generators, identity);
    if (dp) dp->count_previous_steps(st.step);
  }
  if (group) {
    // Every rank starts from rank 0's parameters, whatever its own initialization drew.
    at::NoGradGuard no_grad;
    for (const auto& [name, p] : trainable.named_parameters()) {
      at::Tensor t = p.detach();
      group->broadcast(t, 0, "the initial parameters");
    }
  }
  // The run folder exists from here on (not before: a refused run leaves none behind). Until
  // the run has a checkpoint or a result in it, a failure removes it again if it was new.
  // Only rank 0 writes into it.
  std::unique_ptr<NewDirectory> run_folder =
      cfg.in_memory || !writer ? nullptr : std::make_unique<NewDirectory>(cfg.out);
  MetricsLog metrics(cfg.in_memory || !writer ? fs::path() : cfg.out / "metrics.jsonl", cfg.resume, st.step);
  // Every line goes to the log and to the caller's progress callback.
  const auto log_line = [&](const Json& line) {
    metrics.add(line);
    if (cfg.on_step) cfg.on_step(line);
  };
  // In-memory runs hand their checkpoints to the caller (who seals them) instead of out/checkpoint.
  auto checkpoint_now = [&] {
    if (!writer) return;
    if (cfg.in_memory) {
      if (!cfg.save_checkpoint) return;
      std::string bytes = training_checkpoint_bytes(trainable, *optimizer, generators, st, identity);
      cfg.save_checkpoint(st.step, bytes);
      privacy::wipe(bytes);  // derived from the user's data: no plaintext left in freed memory
      return;
    }
    save_training_checkpoint(checkpoint_dir, trainable, *optimizer, generators, st, identity);
    run_folder->keep();  // resumable from here on
  };
  ProgressBar bar(cfg.steps, cfg.progress && writer, cfg.log_every);
  if (cfg.resume) {
    bar.message("resumed from " + (cfg.in_memory ? std::string("the stored checkpoint") : checkpoint_dir.string()) +
                " at step " + std::to_string(st.step));
  }
  const auto stop_now = [&] { return stop_requested() || (cfg.should_stop && cfg.should_stop()); };
  // A data-parallel rank never abandons a step halfway (its peers would wait for it in the
  // all-reduce): the ranks agree to stop between steps instead.
  ScopedStopCondition stop_condition(group ? std::function<bool()>([] { return false; }) : std::function<bool()>(stop_now));
  TrainResult result;
  if (st.step == 0) {
    try {
      st.eval_loss_before = evaluate_loss(decoder, trainable, eval_rows, cfg.batch, cfg.eval_max_rows, group);
    } catch (const StepInterrupted&) {
      // Nothing trained yet and nothing worth keeping: the next run starts afresh.
      bar.finish();
      result.stop_reason = "interrupted";
      result.peak_rss_mb = peak_rss_mb();
      return result;
    }
    if (eval_rows.rows() > 0) log_line(Json{{"step", 0}, {"eval_loss", st.eval_loss_before}});
  }

  RowOrder order(train_rows.rows(), mix_seed(cfg.seed, 2));
  trainable.set_training(true);
  const auto& params = trainable.named_parameters();
  const int64_t rows_per_rank = cfg.batch * cfg.grad_accum;
  const int64_t rows_per_step = rows_per_rank * world;
  std::unique_ptr<GradientSync> sync;
  if (group) sync = std::make_unique<GradientSync>(*group, params, /*overlap=*/!checkpoint);
  result.grad_checkpoint = checkpoint;
  std::string stop_reason = "finished";
  double eval_loss = st.eval_loss_before;
  int64_t evaluated_at = -1;  // the step whose held-out loss eval_loss is (-1: none this run)

  // Forward, backward and the update of step st.step (the loop below does the bookkeeping).
  const auto one_step = [&]() -> StepStats {
    StepStats out;
    optimizer->set_lr(schedule.at(st.step));
    // The step's micro-batches, and the number of trained targets they hold: each micro-batch's
    // summed loss is divided by it, so accumulation equals one large batch.
    std::vector<MicroBatch> micro;
    for (int64_t m = 0; m < cfg.grad_accum && !dp; ++m) {
      std::vector<int64_t> idx;
      // This rank's share of the step's global batch: its own slice of the same seeded order.
      const int64_t first = st.rows_consumed + rank * rows_per_rank + m * cfg.batch;
      for (int64_t r = 0; r < cfg.batch; ++r) idx.push_back(order.row(first + r));
      micro.push_back(gather_rows(train_rows, at::tensor(idx, at::kLong)));
      out.tokens += micro.back().weights.sum().item<double>();
    }
    // Each loss is divided by the trained targets of the whole step (all ranks), so the summed
    // gradients are those of one large batch.
    out.tokens = sum_over_ranks(group, out.tokens, "the step's token count");
    for (size_t m = 0; m < micro.size(); ++m) {
      at::Tensor loss = micro_batch_loss(decoder, micro[m], checkpoint, generators, recompute_rows);
      out.loss_sum += loss.item<double>();
      if (sync && m + 1 == micro.size()) sync->arm();
      if (out.tokens > 0) (loss / out.tokens).backward();
    }
    if (sync) {
      sync->finish();
      out.loss_sum = sum_over_ranks(group, out.loss_sum, "the step's loss");
    }
    if (dp) {
      // DP-SGD replaces batching and global clipping: per-row gradients, clipped, noised.
      const PrivateStepStats s = dp->run(params, [&](int64_t row) {
        MicroBatch b = gather_rows(train_rows, at::tensor({row}, at::kLong));
        return std::make_pair(micro_batch_loss(decoder, b, checkpoint, generators, recompute_rows), b.weights.sum().item<double>());
      });
      out.loss_sum = s.loss_sum;
      out.tokens = s.tokens;
      out.grad_norm = s.mean_grad_norm;
    } else {
      out.grad_norm = clip_grad_norm(params, cfg.max_grad_norm);
    }
    optimizer->step();
    optimizer->zero_grad();
    return out;
  };

  while (st.step < cfg.steps) {
    const bool stop = group ? any_rank(*group, stop_now()) : stop_now();
    if (stop || (cfg.stop_after_steps > 0 && st.step >= cfg.stop_after_steps)) {
      stop_reason = stop ? "interrupted" : "step_limit";
      break;
    }
    const auto t0 = Clock::now();
    // A step abandoned at an interruption point leaves no trace: the random draws it made are
    // undone and its gradients dropped, so the checkpoint is exactly the last whole step.
    const std::vector<at::Tensor> rng_before = generator_states(generators);
    StepStats step;
    try {
      step = one_step();
    } catch (const StepInterrupted&) {
      restore_generator_states(generators, rng_before);
      optimizer->zero_grad();
      stop_reason = "interrupted";
      break;
    }
    const double step_tokens = step.tokens, loss_sum = step.loss_sum, grad_norm = step.grad_norm;
    st.rows_consumed += rows_per_step;
    st.trained_tokens += int64_t(step_tokens);
    ++st.step;
    const double step_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    st.train_seconds += step_seconds;

    const double loss = step_tokens > 0 ? loss_sum / step_tokens : 0;
    record_recent_loss(st, loss, recent_losses_to_keep(cfg.steps));
    const double tok_s = double(st.step * rows_per_step * cfg.seq_len) / std::max(1e-9, st.train_seconds);
    const double eta = st.train_seconds / double(st.step) * double(cfg.steps - st.step);
    const Json line{{"step", st.step},          {"loss", loss},          {"lr", schedule.at(st.step - 1)},
                    {"grad_norm", grad_norm}, {"tokens_per_s", tok_s}, {"step_seconds", step_seconds},
                    {"eta_seconds", eta}};
    log_line(line);
    bar.update(st.step, loss, tok_s, eta);

    const bool last = st.step == cfg.steps;
    if (eval_rows.rows() > 0 && ((cfg.eval_every > 0 && st.step % cfg.eval_every == 0) || last)) {
      try {
        eval_loss = evaluate_loss(decoder, trainable, eval_rows, cfg.batch, cfg.eval_max_rows, group);
      } catch (const StepInterrupted&) {
        stop_reason = "interrupted";  // the step itself is whole: it is checkpointed below
        break;
      }
      evaluated_at = st.step;
      log_line(Json{{"step", st.step}, {"eval_loss", eval_loss}, {"eval_ppl", std::exp(eval_loss)}});
      bar.message("step " + std::to_string(st.step) + ": held-out loss " + std::to_string(eval_loss) + ", perplexity " +
                  std::to_string(std::exp(eval_loss)));
      if (eval_loss < st.best_eval) {
        st.best_eval = eval_loss;
        st.evals_since_best = 0;
      } else if (cfg.patience > 0 && ++st.evals_since_best >= cfg.patience) {
        stop_reason = "early_stopping";
        break;
      }
    }
    if (cfg.checkpoint_every > 0 && st.step % cfg.checkpoint_every == 0 && !last) {
      checkpoint_now();
    }
  }
  // A run resumed after its last step (stopped during the final evaluation) evaluates now.
  if (stop_reason == "finished" && eval_rows.rows() > 0 && evaluated_at != st.step) {
    try {
      eval_loss = evaluate_loss(decoder, trainable, eval_rows, cfg.batch, cfg.eval_max_rows, group);
      log_line(Json{{"step", st.step}, {"eval_loss", eval_loss}, {"eval_ppl", std::exp(eval_loss)}});
    } catch (const StepInterrupted&) {
      stop_reason = "interrupted";
    }
  }
  bar.finish();

  result.steps_done = st.step;
  result.stop_reason = stop_reason;
  result.completed = stop_reason == "finished" || stop_reason == "early_stopping";
  result.eval_loss_before = st.eval_loss_before;
  result.eval_ppl_before = std::exp(st.eval_loss_before);
  result.eval_rows = eval_rows.rows();
  result.tokens_per_s = double(st.step * rows_per_step * cfg.seq_len) / std::max(1e-9, st.train_seconds);
  result.trained_tokens = st.trained_tokens;
  result.optimizer_state_bytes = optimizer->state_bytes();
  for (const auto& [name, bytes] : optimizer->state_bytes_by_group()) result.optimizer_state_by_group[name] = bytes;
  if (dp) result.privacy = dp->report();
  // Train loss: mean of the last tenth of the run's steps, kept through checkpoints, so a run
  // trained in slices reports what an uninterrupted one does.
  result.train_loss = recent_training_loss(st);

  if (!result.completed) {
    checkpoint_now();
    result.checkpoint_saved = !cfg.in_memory || static_cast<bool>(cfg.save_checkpoint);
    bar.message("stopped at step " + std::to_string(st.step) + "; checkpoint saved " +
                (cfg.in_memory ? std::string(cfg.save_checkpoint ? "(sealed)" : "nowhere (no checkpoint store)")
                               : "in " + checkpoint_dir.string()) +
                " (continue with --resume)");
    result.peak_rss_mb = peak_rss_mb();
    return result;
  }
  result.eval_loss_after = eval_rows.rows() > 0 ? eval_loss : 0;
  result.eval_ppl_after = std::exp(result.eval_loss_after);
  result.eval_rows = eval_rows.rows();
  result.peak_rss_mb = peak_rss_mb();
  Json summary = result.to_json();
  summary["method"] = trainable.method();
  summary["trainable_parameters"] = trainable.parameter_count();
  summary["optimizer"] = optimizer->describe();
  summary["config"] = identity;
  if (cfg.in_memory) return result;  // the caller seals the trainable's tensors itself
  if (!writer) {
    group->barrier("the end of the run");  // rank 0 has written the result when this returns
    return result;
  }
  // The result replaces the run folder as a whole; the run's records are written back beside it.
  const std::vector<Json> lines = metrics.lines();
  trainable.save(cfg.out, decoder, base.name, base.fingerprint, summary);
  run_folder->keep();
  std::string all;
  for (const Json& j : lines) all += j.dump() + "\n";
  write_file_atomic(cfg.out / "metrics.jsonl", all);
  write_file_atomic(cfg.out / "training_summary.json", summary.dump(2));
  write_loss_curve(cfg.out / "loss_curve.svg", lines, trainable.method() + " on " + fs::path(base.name).filename().string());
  if (group) group->barrier("the end of the run");
  return result;
}

}  // namespace hearth::trainer
