#include "engine/job_spec.h"

#include <limits>

#include "core/error.h"
#include "core/json_fields.h"
#include "inference/quant/quant_format.h"

namespace hearth::engine {
namespace {

constexpr int64_t kMaxSteps = 10'000'000;   // ~ years of phone time; a typo beyond it is refused
constexpr int64_t kMaxSeqLen = 1 << 17;     // the model's own context caps it further when loaded
constexpr int64_t kMaxBatch = 4096;

void require_in(bool ok, const std::string& name, const std::string& value, const std::string& allowed) {
  require(ok, ErrorCode::kInvalidArgument, "job setting " + name + " = " + value + " is out of range; allowed: " + allowed);
}

}  // namespace

LoadOptions BaseModelSpec::load_options() const {
  LoadOptions o;
  o.compute_dtype = parse_compute_dtype(dtype);
  if (!quant.empty()) o.quant = parse_quant_format(quant);
  o.embeddings = parse_embedding_storage(embeddings);
  return o;
}

Json BaseModelSpec::to_json() const {
  return Json{{"path", path}, {"tokenizer", tokenizer}, {"dtype", dtype}, {"quant", quant}, {"embeddings", embeddings}};
}

BaseModelSpec BaseModelSpec::from_json(const Json& j, const std::string& what) {
  JsonFields f(j, what);
  BaseModelSpec b;
  f.read("path", b.path);
  f.read("tokenizer", b.tokenizer);
  f.read("dtype", b.dtype);
  f.read("quant", b.quant);
  f.read("embeddings", b.embeddings);
  f.finish();
  b.load_options();  // unknown names fail here, naming them
  return b;
}

void TrainingSpec::validate() const {
  require_in(method == "lora" || method == "dora", "method", method, "lora or dora");
  require_in(rank >= 1 && rank <= 1024, "rank", std::to_string(rank), "1..1024");
  require_in(alpha > 0 && alpha <= 1e6, "alpha", std::to_string(alpha), "(0, 1e6]");
  require_in(dropout >= 0 && dropout < 1, "dropout", std::to_string(dropout), "[0, 1)");
  require_in(optimizer == "adamw" || optimizer == "apollo" || optimizer == "apollo-mini", "optimizer", optimizer,
             "adamw, apollo or apollo-mini");
  require_in(steps >= 1 && steps <= kMaxSteps, "steps", std::to_string(steps), "1.." + std::to_string(kMaxSteps));
  require_in(seq_len >= 2 && seq_len <= kMaxSeqLen, "seq_len", std::to_string(seq_len), "2.." + std::to_string(kMaxSeqLen));
  require_in(batch >= 1 && batch <= kMaxBatch, "batch", std::to_string(batch), "1.." + std::to_string(kMaxBatch));
  require_in(lr > 0 && lr <= 1, "lr", std::to_string(lr), "(0, 1]");
  require_in(warmup >= -1 && warmup < steps, "warmup", std::to_string(warmup), "-1 (10% of steps) or 0..steps-1");
  require_in(eval_fraction >= 0 && eval_fraction < 1, "eval_fraction", std::to_string(eval_fraction), "[0, 1)");
  require_in(eval_every >= 0 && eval_every <= kMaxSteps, "eval_every", std::to_string(eval_every), "0..steps");
  require_in(eval_max_rows >= 0, "eval_max_rows", std::to_string(eval_max_rows), ">= 0");
  require_in(checkpoint_every >= 0 && checkpoint_every <= kMaxSteps, "checkpoint_every", std::to_string(checkpoint_every),
             "0..steps");
  require_in(max_memory_mb == 0 || (max_memory_mb >= 64 && max_memory_mb <= (int64_t(1) << 20)), "max_memory_mb",
             std::to_string(max_memory_mb), "0 (no ceiling) or 64..1048576");
  require_in(keep_versions >= 1 && keep_versions <= 1000, "keep_versions", std::to_string(keep_versions), "1..1000");
  require_in(!adapter_name.empty() && adapter_name.size() <= 128, "adapter_name", "\"" + adapter_name + "\"",
             "1-128 bytes");
}

Json TrainingSpec::to_json() const {
  Json j{{"method", method},
         {"rank", rank},
         {"alpha", alpha},
         {"rslora", rslora},
         {"dropout", dropout},
         {"targets", targets},
         {"optimizer", optimizer},
         {"steps", steps},
         {"seq_len", seq_len},
         {"batch", batch},
         {"lr", lr},
         {"warmup", warmup},
         {"eval_fraction", eval_fraction},
         {"eval_every", eval_every},
         {"eval_max_rows", eval_max_rows},
         {"seed", seed},
         {"checkpoint_every", checkpoint_every},
         {"max_memory_mb", max_memory_mb},
         {"adapter_name", adapter_name},
         {"keep_versions", keep_versions}};
  if (dp.enabled()) j["dp"] = Json{{"clip", dp.clip}, {"noise", dp.noise}, {"epsilon", dp.epsilon}, {"delta", dp.delta}};
  return j;
}

TrainingSpec TrainingSpec::from_json(const Json& j, const std::string& what) {
  JsonFields f(j, what);
  TrainingSpec t;
  f.read("method", t.method);
  f.read("rank", t.rank, 1, 1024);
  f.read("alpha", t.alpha, 1e-6, 1e6);
  f.read("rslora", t.rslora);
  f.read("dropout", t.dropout, 0.0, 0.999);
  f.read("targets", t.targets);
  f.read("optimizer", t.optimizer);
  f.read("steps", t.steps, 1, kMaxSteps);
  f.read("seq_len", t.seq_len, 2, kMaxSeqLen);
  f.read("batch", t.batch, 1, kMaxBatch);
  f.read("lr", t.lr, 1e-12, 1.0);
  f.read("warmup", t.warmup, -1, kMaxSteps);
  f.read("eval_fraction", t.eval_fraction, 0.0, 0.99);
  f.read("eval_every", t.eval_every, 0, kMaxSteps);
  f.read("eval_max_rows", t.eval_max_rows, 0, std::numeric_limits<int64_t>::max());
  f.read("seed", t.seed);
  f.read("checkpoint_every", t.checkpoint_every, 0, kMaxSteps);
  f.read("max_memory_mb", t.max_memory_mb, 0, int64_t(1) << 20);
  f.read("adapter_name", t.adapter_name);
  f.read("keep_versions", t.keep_versions, 1, 1000);
  const Json dp = f.object("dp");
  f.finish();
  if (!dp.is_null()) {
    JsonFields d(dp, what + " dp");
    d.read("clip", t.dp.clip, 1e-9, 1e9);
    d.read("noise", t.dp.noise, 0.0, 1e6);
    d.read("epsilon", t.dp.epsilon, 0.0, 1e6);
    d.read("delta", t.dp.delta, 1e-300, 0.999);
    d.finish();
  }
  t.validate();
  return t;
}

Json JobSpec::to_json() const {
  return Json{{"user", user}, {"base", base.to_json()}, {"training", training.to_json()}, {"policy", policy.to_json()}};
}

JobSpec JobSpec::from_json(const Json& j, const std::string& what) {
  JsonFields f(j, what);
  JobSpec s;
  f.read("user", s.user);
  const Json base = f.object("base"), training = f.object("training"), policy = f.object("policy");
  f.finish();
  if (!base.is_null()) s.base = BaseModelSpec::from_json(base, what + " base");
  if (!training.is_null()) s.training = TrainingSpec::from_json(training, what + " training");
  if (!policy.is_null()) s.policy = JobPolicy::from_json(policy, what + " policy");
  return s;
}

Json JobProgress::to_json() const {
  return Json{{"step", step},
              {"steps", steps},
              {"loss", loss},
              {"tokens_per_s", tokens_per_s},
              {"eta_seconds", eta_seconds},
              {"eval_loss_before", eval_loss_before},
              {"eval_loss_after", eval_loss_after},
              {"peak_rss_mb", peak_rss_mb},
              {"slices", slices},
              {"last_reason", last_reason}};
}

JobProgress JobProgress::from_json(const Json& j) {
  JobProgress p;
  if (!j.is_object()) return p;
  p.step = j.value("step", int64_t(0));
  p.steps = j.value("steps", int64_t(0));
  p.loss = j.value("loss", 0.0);
  p.tokens_per_s = j.value("tokens_per_s", 0.0);
  p.eta_seconds = j.value("eta_seconds", 0.0);
  p.eval_loss_before = j.value("eval_loss_before", 0.0);
  p.eval_loss_after = j.value("eval_loss_after", 0.0);
  p.peak_rss_mb = j.value("peak_rss_mb", 0.0);
  p.slices = j.value("slices", int64_t(0));
  p.last_reason = j.value("last_reason", std::string());
  return p;
}

Json JobInfo::to_json() const {
  return Json{{"id", id},
              {"user", user},
              {"status", status},
              {"spec", spec.to_json()},
              {"progress", progress.to_json()},
              {"created", created},
              {"updated", updated},
              {"adapter_version", adapter_version}};
}

}  // namespace hearth::engine
