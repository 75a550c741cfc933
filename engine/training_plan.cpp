#include "engine/training_plan.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "trainer/trainer.h"

namespace hearth::engine {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;
// The process before any model: LibTorch's code and allocator, OpenMP and BLAS buffers, the
// tokenizer. Measured at ~110 MB for `hearth` on stories260K (peak RSS of a 1-step run minus
// its weights and activations); rounded up.
constexpr double kRuntimeMb = 140;
// Activations are estimated from the shapes; allocator slack and temporaries come on top.
constexpr double kActivationSlack = 1.3;

// Autograd's saved activations of one decoder block for `rows` rows: about 10 hidden-sized and
// 3 intermediate-sized tensors per position, plus attention scores and probabilities.
double block_bytes(const ModelConfig& m, int64_t rows, int64_t seq_len) {
  return double(rows) * seq_len * (10.0 * m.hidden_size + 3.0 * m.intermediate_size) * 4 +
         2.0 * rows * m.num_heads * double(seq_len) * seq_len * 4;
}

// The trainer recomputes a checkpointed block this many rows at a time (trainer.cpp).
int64_t recompute_rows(int64_t micro_batch, int64_t seq_len) {
  return std::min<int64_t>(micro_batch, std::max<int64_t>(1, 512 / seq_len));
}

double state_bytes_per_param(const std::string& optimizer) {
  // AdamW keeps two fp32 moments; APOLLO's moments live in a projected space (a fraction of a
  // matrix), APOLLO-Mini's in a rank-1 one. Upper bounds for the plan, not the report.
  if (optimizer == "adamw") return 8;
  if (optimizer == "apollo") return 4;
  return 1;
}

}  // namespace

std::string MemoryPlan::describe() const {
  std::ostringstream out;
  out << "micro-batch " << micro_batch << " x " << grad_accum << ", gradient checkpointing "
      << (grad_checkpoint ? "on" : "off") << ", ~" << std::lround(estimated_mb) << " MB";
  return out.str();
}

double estimate_step_mb(const ModelConfig& m, size_t weight_bytes, int64_t micro_batch, int64_t seq_len,
                        bool grad_checkpoint, int64_t adapter_params, double state_per_param) {
  double activations = grad_checkpoint ? double(m.num_layers) * micro_batch * seq_len * m.hidden_size * 4 +
                                             block_bytes(m, recompute_rows(micro_batch, seq_len), seq_len)
                                       : double(m.num_layers) * block_bytes(m, micro_batch, seq_len);
  // The loss: the final hidden states and their gradient, and a few MiB of logits per tile.
  activations += 2.0 * micro_batch * seq_len * m.hidden_size * 4 + 16 * kMiB;
  const double adapter = double(adapter_params) * (8 + state_per_param);
  return kRuntimeMb + double(weight_bytes) / kMiB + (activations * kActivationSlack + adapter) / kMiB;
}

MemoryPlan plan_memory(const ModelConfig& m, size_t weight_bytes, const TrainingSpec& spec, int64_t adapter_params) {
  const double state = state_bytes_per_param(spec.optimizer);
  auto plan = [&](bool ckpt, int64_t micro) {
    return MemoryPlan{ckpt, micro, spec.batch / micro,
                      estimate_step_mb(m, weight_bytes, micro, spec.seq_len, ckpt, adapter_params, state)};
  };
  if (spec.max_memory_mb == 0) return plan(trainer::auto_grad_checkpoint(m, spec.batch, spec.seq_len), spec.batch);
  for (bool ckpt : {false, true}) {
    for (int64_t micro = spec.batch; micro >= 1; --micro) {
      if (spec.batch % micro != 0) continue;
      const MemoryPlan p = plan(ckpt, micro);
      if (p.estimated_mb <= double(spec.max_memory_mb)) return p;
    }
  }
  const MemoryPlan smallest = plan(true, 1);
  fail(ErrorCode::kInvalidArgument,
       "the job cannot train under max_memory_mb = " + std::to_string(spec.max_memory_mb) + ": even one row at a time with "
       "gradient checkpointing needs ~" + std::to_string(std::lround(smallest.estimated_mb)) +
           " MB; raise the ceiling or lower seq_len");
}

AdapterConfig adapter_config_of(const TrainingSpec& spec) {
  AdapterConfig a;
  a.method = parse_adapter_method(spec.method);
  a.rank = spec.rank;
  a.alpha = spec.alpha;
  a.rslora = spec.rslora;
  a.dropout = spec.dropout;
  a.targets = AdapterConfig::parse_targets(spec.targets);
  a.seed = spec.seed;
  a.validate();
  return a;
}

trainer::TrainConfig train_config_of(const TrainingSpec& spec, const MemoryPlan& plan) {
  trainer::TrainConfig c;
  c.steps = spec.steps;
  c.seq_len = spec.seq_len;
  c.batch = plan.micro_batch;
  c.grad_accum = plan.grad_accum;
  c.lr = spec.lr;
  c.warmup = spec.warmup >= 0 ? spec.warmup : spec.steps / 10;
  c.eval_every = spec.eval_every;
  c.eval_max_rows = spec.eval_max_rows;
  c.seed = spec.seed;
  c.grad_checkpoint = plan.grad_checkpoint ? trainer::GradCheckpoint::kOn : trainer::GradCheckpoint::kOff;
  c.optimizer.name = spec.optimizer;
  c.optimizer.lr = spec.lr;
  c.optimizer.seed = spec.seed;
  c.checkpoint_every = spec.checkpoint_every;
  c.dp = spec.dp;
  c.in_memory = true;
  c.progress = false;  // a background job has no terminal; progress goes to the job's row
  return c;
}

int64_t adapter_parameter_count(const ModelConfig& m, const AdapterConfig& a) {
  const int64_t h = m.hidden_size, q = m.num_heads * m.head_dim, kv = m.num_kv_heads * m.head_dim, i = m.intermediate_size;
  int64_t per_layer = 0;
  auto add = [&](const char* name, int64_t in, int64_t out) {
    if (a.targets_module(name)) per_layer += a.rank * (in + out) + (a.method == AdapterMethod::kDoRA ? out : 0);
  };
  add("q_proj", h, q);
  add("k_proj", h, kv);
  add("v_proj", h, kv);
  add("o_proj", q, h);
  add("gate_proj", h, i);
  add("up_proj", h, i);
  add("down_proj", i, h);
  int64_t layers = 0;
  for (int64_t l = 0; l < m.num_layers; ++l) layers += a.covers_layer(l, m.num_layers);
  return per_layer * layers;
}

}  // namespace hearth::engine
