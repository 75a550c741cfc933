#include "trainer/quantization_distillation.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "inference/calibration_data.h"
#include "inference/linear_quantized.h"
#include "inference/model_builder.h"
#include "inference/quant/quant_method.h"
#include "optim/adamw.h"
#include "trainer/lr_schedule.h"
#include "trainer/tail_average.h"

namespace hearth::trainer {
namespace {

std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }


// The student: latent fp32 weights that train, each matrix's format (rounded in the forward),
// and what stays fixed (biases).
class Student {
 public:
  Student(const ModelConfig& config, const TensorSource& t, const MatrixFormats& formats) : config_(config), format_(formats) {
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      DecoderLayer names;
      for (const auto& [name, linear] : names.projections()) {
        add(t, layer_prefix(l) + DecoderLayer::module_path(name) + ".weight");
        const std::string bias = layer_prefix(l) + DecoderLayer::module_path(name) + ".bias";
        if (t.contains(bias)) fixed_[bias] = t.get(bias).to(at::kFloat);
      }
      for (const auto& [name, member] : DecoderLayer::norm_names(config_)) add(t, layer_prefix(l) + name);
    }
    add(t, "model.embed_tokens.weight");
    if (!config_.tie_word_embeddings && t.contains("lm_head.weight")) add(t, "lm_head.weight");
    add(t, "model.norm.weight");
  }

  std::vector<at::Tensor> parameters() const {
    std::vector<at::Tensor> out;
    for (const auto& [name, p] : latent_) out.push_back(p);
    return out;
  }
  int64_t parameter_count() const {
    int64_t n = 0;
    for (const auto& [name, p] : latent_) n += p.numel();
    return n;
  }

  // The model as it would run once quantized: rounded matrices whose gradient passes straight
  // through to the latent weights.
  std::shared_ptr<Decoder> rounded() const {
    std::vector<DecoderLayer> layers(config_.num_layers);
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      DecoderLayer& layer = layers[l];
      for (auto& [name, linear] : layer.projections()) {
        const std::string p = layer_prefix(l) + DecoderLayer::module_path(name);
        auto bias = fixed_.find(p + ".bias");
        *linear = Linear::dense(forward_weight(p + ".weight"), bias == fixed_.end() ? at::Tensor() : bias->second);
      }
      for (const auto& [name, member] : DecoderLayer::norm_names(config_)) layer.*member = latent_.at(layer_prefix(l) + name);
    }
    const at::Tensor table = forward_weight("model.embed_tokens.weight");
    const at::Tensor head = latent_.count("lm_head.weight") ? forward_weight("lm_head.weight") : table;
    return std::make_shared<Decoder>(config_, Embedding::dense(table), std::move(layers), latent_.at("model.norm.weight"),
                                     Linear::dense(head));
  }

  std::map<std::string, at::Tensor> tuned() const {
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, p] : latent_) out[name] = p.detach();  // the student ends here: no copy
    return out;
  }

 private:
  void add(const TensorSource& t, const std::string& name) {
    latent_[name] = t.get(name).to(at::kFloat).clone().set_requires_grad(true);
  }

  at::Tensor forward_weight(const std::string& name) const {
    const at::Tensor& w = latent_.at(name);
    auto f = format_.find(name);
    if (f == format_.end()) return w;
    at::Tensor rounded;
    {
      at::NoGradGuard no_grad;
      rounded = round_trip_absmax(w.detach(), f->second);
    }
    return w + (rounded - w.detach());  // straight-through: the forward sees `rounded`, the gradient w's
  }

  const ModelConfig& config_;
  std::map<std::string, at::Tensor> latent_;
  MatrixFormats format_;
  std::map<std::string, at::Tensor> fixed_;
};

// Removes a staging folder however the work ends.
struct RemovedOnExit {
  std::filesystem::path path;
  ~RemovedOnExit() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

// KL(teacher ‖ student) per token, from logits [B, T, V].
at::Tensor distillation_loss(const at::Tensor& teacher_logits, const at::Tensor& student_logits) {
  const at::Tensor t = at::log_softmax(teacher_logits, -1);
  const at::Tensor s = at::log_softmax(student_logits, -1);
  const int64_t tokens = student_logits.numel() / student_logits.size(-1);
  return (t.exp() * (t - s)).sum() / static_cast<double>(tokens);
}

}  // namespace

void validate(const DistillOptions& o) {
  require(o.steps >= 0 && o.steps <= 1000000, ErrorCode::kInvalidArgument,
          "--distill-steps must be between 0 and 1000000, got " + std::to_string(o.steps));
  require(std::isfinite(o.lr) && o.lr > 0 && o.lr <= 1, ErrorCode::kInvalidArgument,
          "--distill-lr must be in (0, 1], got " + std::to_string(o.lr));
  require(o.batch >= 1 && o.batch <= 4096, ErrorCode::kInvalidArgument,
          "--distill-batch must be between 1 and 4096 windows, got " + std::to_string(o.batch));
  require(std::isfinite(o.average) && o.average >= 0 && o.average <= 1, ErrorCode::kInvalidArgument,
          "--distill-average is the share of the last updates to average, between 0 and 1, got " + std::to_string(o.average));
}

namespace {

// "model.layers.L.self_attn.q_proj" and the like: every projection of every layer.
std::vector<std::string> projection_prefixes(int64_t layers) {
  std::vector<std::string> out;
  for (int64_t l = 0; l < layers; ++l)
    for (const auto& [name, linear] : DecoderLayer().projections()) out.push_back(layer_prefix(l) + DecoderLayer::module_path(name));
  return out;
}

}  // namespace

MatrixFormats uniform_formats(const ModelConfig& config, QuantFormat projections, std::optional<QuantFormat> table) {
  MatrixFormats formats;
  for (const std::string& prefix : projection_prefixes(config.num_layers)) formats[prefix + ".weight"] = projections;
  if (table) formats["model.embed_tokens.weight"] = formats["lm_head.weight"] = *table;
  return formats;
}

DistillResult distill_for_quantization(const ModelSource& source, const TensorSource& start, const at::Tensor& windows,
                                       const MatrixFormats& formats, const DistillOptions& options) {
  validate(options);
  require(windows.dim() == 2 && windows.size(0) > 0, ErrorCode::kInvalidArgument, "distillation needs calibration windows");
  Student student(source.config, start, formats);
  require(student.parameter_count() <= kMaxDistillParameters, ErrorCode::kInvalidArgument,
          "--distill-steps holds the model four to five times in fp32 and takes models up to " +
              std::to_string(kMaxDistillParameters >> 20) + "M parameters; this one has " +
              std::to_string(student.parameter_count() >> 20) + "M: quantize it without --distill-steps");
  const std::shared_ptr<Decoder> teacher = build_decoder(source.config, *source.tensors, LoadOptions{});
  std::vector<at::Tensor> params = student.parameters();
  std::vector<optim::ParamState> states(params.size());
  const LrSchedule schedule{options.lr, std::max<int64_t>(1, options.steps / 10), options.steps, 0.1};
  TailAverage average(options.steps, options.average);
  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int64_t> pick(0, windows.size(0) - 1);
  DistillResult result;
  double tail_loss = 0;
  int64_t tail = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    std::vector<int64_t> rows(std::min(options.batch, windows.size(0)));
    for (int64_t& r : rows) r = pick(rng);
    const at::Tensor tokens = windows.index_select(0, at::tensor(rows, at::kLong));
    at::Tensor target;
    {
      c10::InferenceMode no_grad;
      target = teacher->forward(ForwardInput{tokens, {}, {}, nullptr});
    }
    const at::Tensor loss = distillation_loss(target.clone(), student.rounded()->forward(ForwardInput{tokens, {}, {}, nullptr}));
    loss.backward();
    const double value = loss.item<double>();
    if (step == 0) result.first_loss = value;
    if (step >= options.steps - std::max<int64_t>(1, options.steps / 10)) tail_loss += value, ++tail;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) continue;
      optim::adamw_update(params[i], params[i].grad(), states[i], optim::AdamSettings{}, schedule.at(step), 0.0);
      params[i].mutable_grad().reset();
    }
    average.after_update(step, params);
  }
  average.apply(params);
  result.last_loss = tail > 0 ? tail_loss / tail : result.first_loss;
  result.tensors = student.tuned();
  return result;
}

namespace {

// What a budget chose in a staged folder: each projection's format and the table's storage.
struct Allocation {
  std::map<std::string, QuantFormat> projections;  // by prefix, as QuantizeRequest::fixed_formats
  EmbeddingStorage table = EmbeddingStorage::kInt8;
  int64_t split_table_rows = 0;  // when the table is split: its high-precision rows
  Json budget;  // the staged recipe's record of it
};

Allocation read_allocation(const std::filesystem::path& folder) {
  const ModelSource staged = open_model_source(folder);
  const QuantizationInfo& info = *staged.quantization;
  Allocation a;
  for (const std::string& prefix : projection_prefixes(staged.config.num_layers)) a.projections[prefix] = info.format_of(prefix);
  a.table = info.embeddings;
  if (info.table_split) a.split_table_rows = info.recipe.at("table_split").at("frequent_rows").get<int64_t>();
  a.budget = info.recipe.value("budget", Json());
  return a;
}

MatrixFormats distilled_formats(const Allocation& a) {
  MatrixFormats formats;
  for (const auto& [prefix, format] : a.projections) formats[prefix + ".weight"] = format;
  if (auto table = embedding_quant_format(a.table)) formats["model.embed_tokens.weight"] = formats["lm_head.weight"] = *table;
  return formats;
}

// A split table's student learns with the whole table in the finer format, and only the final
// rounding splits it: measured better than training with the split's rounding (docs/quantization.md,
// "The split table, measured before building it"). It starts, as every matrix does, from the
// method's result.
void train_split_table_finely(MatrixFormats& formats, QuantFormat high_format) {
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) formats[name] = high_format;
}

}  // namespace

QuantizeSummary quantize_with_distillation(const std::filesystem::path& out, const ModelSource& source,
                                           const QuantizeRequest& asked, const DistillOptions& options) {
  validate(options);
  if (options.steps == 0) return quantize_model_folder(out, source, asked);
  QuantizeRequest request = asked;
  if (request.propagation == Propagation::kAuto) request.propagation = Propagation::kFullPrecision;
  check_quantize_request(request, source.config);
  require(!request.calibration.empty(), ErrorCode::kInvalidArgument, "--distill-steps needs calibration text: add --calibrate FILES");
  require(!source.quantization, ErrorCode::kInvalidArgument, "the model is already quantized; quantize its full-precision source");
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(source.tokenizer);
  const int64_t window = request.window > 0 ? request.window : std::min<int64_t>(512, source.config.context_length());
  const CalibrationText text =
      read_calibration_text(*tokenizer, request.calibration, request.calibration_tokens, std::min(window, request.calibration_tokens));
  QuantizeRequest r = request;
  MatrixFormats formats = uniform_formats(source.config, request.format, embedding_quant_format(request.embeddings));
  std::map<std::string, at::Tensor> start;
  Json budget;
  // A calibrated method rounds first and the student starts from what it chose (each block's
  // largest code is ±1, so plain rounding of those weights gives back the method's codes). A
  // budget allocates first, so the student learns around the formats the folder will have
  // (allocating after would put matrices in int8 whose loss others had learned to make up for).
  if (request.method != QuantMethod::kRtn || request.bits > 0) {
    const RemovedOnExit staged{std::filesystem::path(out.string() + ".rounded.tmp")};
    quantize_model_folder(staged.path, source, request);
    if (request.method != QuantMethod::kRtn) start = weights_fp32(*load_model(staged.path, LoadOptions{}).decoder);
    if (request.bits > 0) {
      const Allocation a = read_allocation(staged.path);
      formats = distilled_formats(a);
      r.fixed_formats = a.projections;
      r.embeddings = a.table;
      r.embeddings_fixed = true;
      r.bits = 0;
      r.split_table_rows = a.split_table_rows;
      budget = a.budget;
    }
  }
  if (r.split_table_rows != 0) train_split_table_finely(formats, request.high_format);
  const OverlayTensorSource start_weights(*source.tensors, start);
  const DistillResult tuned = distill_for_quantization(source, start_weights, text.windows, formats, options);
  spdlog::info("distillation: KL {:.4f} -> {:.4f} nats per token over {} updates", tuned.first_loss, tuned.last_loss, options.steps);
  ModelSource distilled;
  distilled.config = source.config;
  distilled.tensors = std::make_unique<OverlayTensorSource>(*source.tensors, tuned.tensors);
  distilled.format = source.format;
  distilled.tokenizer = source.tokenizer;
  distilled.tokenizer_files = source.tokenizer_files;
  r.method = QuantMethod::kRtn;  // rounding as the student was trained to
  r.source_fingerprint = source.fingerprint();
  r.distillation = {{"start", quant_method_name(request.method)},
                    {"start_propagation", propagation_name(request)},
                    {"steps", options.steps}, {"lr", options.lr},
                    {"batch", options.batch}, {"seed", options.seed}, {"average", options.average}, {"kl_first", tuned.first_loss},
                    {"kl_last", tuned.last_loss}};
  if (!budget.is_null()) r.distillation["budget"] = budget;
  QuantizeSummary summary = quantize_model_folder(out, distilled, r);
  if (!budget.is_null()) summary.high_precision = budget.value("high_precision_matrices", int64_t(0));
  return summary;
}

}  // namespace hearth::trainer
