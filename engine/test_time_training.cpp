#include "engine/test_time_training.h"

#include <chrono>
#include <optional>

#include "adapters/adapter.h"
#include "adapters/adapter_set.h"
#include "adapters/stacked_delta.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "engine/training_plan.h"
#include "optim/make_optimizer.h"
#include "trainer/checkpointed_forward.h"
#include "trainer/chunked_loss.h"
#include "trainer/interruption.h"

namespace hearth::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Positions [start, start + length] of the context: `length` inputs and their next tokens.
struct Chunk {
  int64_t start, length;
};

std::vector<Chunk> chunks_of(int64_t tokens, int64_t chunk) {
  std::vector<Chunk> out;
  for (int64_t start = 0; start + 1 < tokens; start += chunk) out.push_back({start, std::min(chunk, tokens - 1 - start)});
  return out;
}

AdapterConfig fresh_config(const TttSettings& s) {
  AdapterConfig c;
  c.rank = s.rank;
  c.alpha = s.alpha > 0 ? s.alpha : 2.0 * double(s.rank);
  c.targets = s.targets;
  c.seed = s.seed;
  return c;
}

// The chunk length and checkpointing that keep a step under the memory ceiling (the longest
// chunk first, plain before checkpointed); kInvalidArgument naming what would fit.
std::pair<int64_t, bool> fit_memory(const Decoder& base, const TttSettings& s, int64_t chunk, int64_t params) {
  const ModelConfig& c = base.config();
  auto mb = [&](int64_t len, bool ckpt) { return estimate_step_mb(c, base.weight_bytes(), 1, len, ckpt, params, 8.0); };
  if (s.max_memory_mb <= 0) return {chunk, false};
  for (int64_t len = chunk; len >= 16; len /= 2)
    for (bool ckpt : {false, true})
      if (mb(len, ckpt) <= s.max_memory_mb) return {len, ckpt};
  fail(ErrorCode::kInvalidArgument, "test-time training cannot run under max_memory_mb = " +
                                        std::to_string(std::lround(s.max_memory_mb)) + ": a 16-token chunk needs ~" +
                                        std::to_string(std::lround(mb(16, true))) + " MB; raise the limit");
}

// Mean next-token loss of one chunk; differentiable with respect to the adapter.
at::Tensor chunk_loss(const Decoder& decoder, const std::vector<int32_t>& context, const Chunk& ch, bool checkpoint) {
  std::vector<int64_t> in(context.begin() + ch.start, context.begin() + ch.start + ch.length);
  std::vector<int64_t> next(context.begin() + ch.start + 1, context.begin() + ch.start + ch.length + 1);
  ForwardInput input;
  input.tokens = at::tensor(in, at::kLong).unsqueeze(0);
  at::Tensor hidden = trainer::training_hidden_states(decoder, input, checkpoint);
  const at::Tensor targets = at::tensor(next, at::kLong);
  return trainer::chunked_cross_entropy(decoder, hidden.reshape({-1, hidden.size(-1)}), targets,
                                        at::ones({ch.length}, at::kFloat)) /
         double(ch.length);
}

}  // namespace

void TttSettings::validate() const {
  require(steps >= 0 && steps <= 100000, ErrorCode::kInvalidArgument,
          "ttt steps must be in [0, 100000], got " + std::to_string(steps));
  require(lr > 0 && lr <= 1, ErrorCode::kInvalidArgument, "ttt lr must be in (0, 1], got " + std::to_string(lr));
  require(user_lr_factor > 0 && user_lr_factor <= 1, ErrorCode::kInvalidArgument,
          "ttt user_lr_factor must be in (0, 1], got " + std::to_string(user_lr_factor));
  require(chunk_tokens >= 2 && chunk_tokens <= 1 << 20, ErrorCode::kInvalidArgument,
          "ttt chunk must be in [2, 1048576] tokens, got " + std::to_string(chunk_tokens));
  require(max_seconds >= 0 && max_memory_mb >= 0, ErrorCode::kInvalidArgument,
          "ttt max_seconds and max_memory_mb must be >= 0 (0: no limit)");
  fresh_config(*this).validate();
}

TttSettings TttSettings::from_json(const Json& j, const std::string& what) {
  TttSettings s;
  JsonFields f(j, what);
  f.read("steps", s.steps, 0, 100000);
  f.read("lr", s.lr, 1e-7, 1.0);
  f.read("user_lr_factor", s.user_lr_factor, 1e-4, 1.0);
  f.read("rank", s.rank, 1, 1024);
  f.read("alpha", s.alpha, 0.0, 1e6);
  f.read("chunk", s.chunk_tokens, 2, 1 << 20);
  std::string targets;
  f.read("targets", targets);
  if (!targets.empty()) s.targets = AdapterConfig::parse_targets(targets);
  f.read("max_seconds", s.max_seconds, 0.0, 86400.0);
  f.read("max_memory_mb", s.max_memory_mb, 0.0, 1e7);
  f.read("seed", s.seed);
  f.read("keep", s.keep);
  f.finish();
  s.validate();
  return s;
}

Json TttReport::to_json() const {
  return {{"steps", steps},           {"context_tokens", context_tokens}, {"chunks", chunks},
          {"chunk_tokens", chunk_tokens}, {"grad_checkpoint", grad_checkpoint}, {"seconds", seconds},
          {"first_loss", first_loss}, {"last_loss", last_loss},           {"stopped_by", stopped_by}};
}

std::shared_ptr<Adapter> train_on_context(const Decoder& base, const std::vector<int32_t>& context,
                                          const TttSettings& settings, const std::shared_ptr<Adapter>& init,
                                          TttReport* report, const std::atomic<bool>* cancel) {
  settings.validate();
  require(context.size() >= 2, ErrorCode::kInvalidArgument,
          "test-time training needs a context of at least 2 tokens; give one (--context FILE or \"context\")");
  const auto t0 = Clock::now();
  c10::InferenceMode not_inference(false);
  at::AutoGradMode grad(true);
  // A decoder of its own over the same weights (shallow copy), so the base's slots stay as they are.
  auto decoder = std::make_shared<Decoder>(base);
  // Over a user's adapter a fresh delta trains and the user's factors stay frozen: training them
  // on the context undid what they had learned (docs/serving.md).
  std::optional<StackedDelta> stacked;
  if (init) stacked.emplace(*decoder, *init, fresh_config(settings));
  std::shared_ptr<Adapter> adapter = stacked ? stacked->adapter() : Adapter::create(*decoder, fresh_config(settings));
  attach_adapter(*decoder, adapter);
  adapter->set_training(true);

  const int64_t window = std::max<int64_t>(2, base.config().context_length());
  const auto [chunk, checkpoint] =
      fit_memory(base, settings, std::min(settings.chunk_tokens, window), adapter->parameter_count());
  const std::vector<Chunk> chunks = chunks_of(int64_t(context.size()), chunk);
  optim::OptimizerConfig oc;
  oc.name = "adamw";
  oc.lr = stacked ? settings.lr * settings.user_lr_factor : settings.lr;
  std::unique_ptr<optim::Optimizer> opt =
      // No weight decay: the frozen part's zero gradients must leave it exactly as it is.
      optim::make_optimizer(oc, {optim::ParamGroup{"ttt", adapter->parameters(), std::nullopt, 0.0, false, 0}});

  TttReport r;
  r.context_tokens = static_cast<int64_t>(context.size());
  r.chunks = static_cast<int64_t>(chunks.size());
  r.chunk_tokens = chunk;
  r.grad_checkpoint = checkpoint;
  r.stopped_by = "steps";
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(settings.max_seconds));
  auto over_time = [&] { return settings.max_seconds > 0 && Clock::now() >= deadline; };
  auto cancelled = [&] { return cancel != nullptr && cancel->load(); };
  // A step still running at the deadline is abandoned at its next interruption point.
  trainer::ScopedStopCondition stop([&] { return over_time() || cancelled(); });
  for (int64_t step = 0; step < settings.steps; ++step) {
    if (cancelled() || over_time()) {
      r.stopped_by = cancelled() ? "cancelled" : "time";
      break;
    }
    try {
      at::Tensor loss = chunk_loss(*decoder, context, chunks[step % chunks.size()], checkpoint);
      loss.backward();
      if (stacked) stacked->keep_base_frozen();
      opt->step();
      opt->zero_grad();
      const double value = loss.item<double>();
      if (step == 0) r.first_loss = value;
      r.last_loss = value;
      r.steps = step + 1;
    } catch (const trainer::StepInterrupted&) {
      opt->zero_grad();
      r.stopped_by = cancelled() ? "cancelled" : "time";
      break;
    }
  }
  adapter->set_training(false);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (report) *report = r;
  return adapter;
}

ContextTrainingHook::ContextTrainingHook(TttSettings settings) : settings_(std::move(settings)) { settings_.validate(); }

std::shared_ptr<Adapter> ContextTrainingHook::before_generation(const TestTimeInput& input) {
  if (!settings_.enabled()) return nullptr;
  return train_on_context(input.base, input.context, settings_, input.user_adapter, &report_, input.cancel);
}

}  // namespace hearth::engine
