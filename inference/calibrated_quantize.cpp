#include "inference/calibrated_quantize.h"

#include <c10/core/InferenceMode.h>

#include <array>
#include <cmath>

#include "core/error.h"
#include "core/runtime.h"
#include "inference/activation_stats.h"
#include "inference/awq_fold.h"
#include "inference/calibration_data.h"
#include "inference/decoder.h"
#include "inference/quant/bit_allocation.h"
#include "inference/quant/quant.h"
#include "inference/quant/quant_grid.h"
#include "inference/split_table.h"
#include "inference/split_table_plan.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

// The projections of a layer in DecoderLayer order, and which of the layer's four inputs each
// reads: 0 the normed block input (q, k, v), 1 the attention output (o), 2 the normed MLP input
// (gate, up), 3 silu(gate) * up (down).
constexpr int kProjections = LayerWeights::kCount;
constexpr const char* kProjectionNames[kProjections] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                       "self_attn.o_proj", "mlp.gate_proj",   "mlp.up_proj",
                                                       "mlp.down_proj"};
constexpr int kInputOf[kProjections] = {0, 0, 0, 1, 2, 2, 3};
constexpr int kInputs = 4;

// Tokens per forward of a block while calibrating: bounds the activations of one batch.
constexpr int64_t kTokensPerBatch = 2048;
// Rows of a matrix dequantized at a time when measuring its error (the table has 150k rows).
constexpr int64_t kErrorRows = 4096;

std::string layer_prefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }

// A layer input's statistics as the quantizers use them (scaling changes them with the weights).
struct InputMoments {
  at::Tensor hessian;   // double [c, c]; undefined without calibration
  at::Tensor mean_abs;  // double [c]
};

// One way to store a matrix (or the embedding table with its untied head, which share a format).
struct Candidate {
  QuantFormat format;
  std::vector<std::shared_ptr<const QuantizedMatrix>> matrices;  // one per prefix of the result
  double error = 0;  // relative output error (or weight error without calibration)
  double bits() const {
    double b = 0;
    for (const auto& m : matrices) b += 8.0 * static_cast<double>(stored_bytes(*m));  // as the folder stores it
    return b;
  }
};

struct MatrixResult {
  std::vector<std::string> prefixes;
  int64_t weights = 0;
  std::vector<Candidate> candidates;
  int chosen = 0;
  const Candidate& choice() const { return candidates[chosen]; }
};

// tr(D H Dᵀ) / tr(W H Wᵀ) with D = dequantized - w, rows a chunk at a time; without H the
// relative squared weight error.
double relative_error(const QuantizedMatrix& q, const at::Tensor& w, const at::Tensor& hessian) {
  const at::Tensor h = hessian.defined() ? hessian.to(at::kFloat) : at::Tensor();
  double err = 0, ref = 0;
  for (int64_t r0 = 0; r0 < q.rows; r0 += kErrorRows) {
    const int64_t n = std::min(kErrorRows, q.rows - r0);
    const at::Tensor wr = w.narrow(0, r0, n).to(at::kFloat);
    const at::Tensor d = quant_embedding(q, at::arange(r0, r0 + n, at::kLong)) - wr;
    if (h.defined()) {
      err += (at::mm(d, h) * d).sum().item<double>();
      ref += (at::mm(wr, h) * wr).sum().item<double>();
    } else {
      err += d.square().sum().item<double>();
      ref += wr.square().sum().item<double>();
    }
  }
  return ref > 0 ? err / ref : err;
}

class Pipeline {
 public:
  Pipeline(const ModelSource& source, const QuantizeRequest& request)
      : source_(source), config_(source.config), request_(request) {}

  QuantizeSummary run(const fs::path& out) {
    check_quantize_request(request_, config_);
    c10::InferenceMode inference;
    const bool calibrate = !request_.calibration.empty();
    if (calibrate) start_calibration();
    Json alphas = Json::array();
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      LayerWeights w = load_layer(l);
      std::array<InputMoments, kInputs> inputs;
      if (calibrate) inputs = collect(l, w);
      // The heap keeps the block's activations once freed (0.45 GB on qwen2.5-0.5b), under
      // GPTQ's largest moment (down's Hessian copies, 0.5 GB): give them back first.
      return_free_memory();
      if (method_scales_channels(request_.method)) alphas.push_back(scale_channels(w, inputs));
      std::array<std::shared_ptr<const QuantizedMatrix>, kProjections> used;
      for (int p = 0; p < kProjections; ++p) {
        results_.push_back(quantize_projection(layer_prefix(l) + kProjectionNames[p], w.weight[p], inputs[kInputOf[p]].hessian));
        used[p] = results_.back().candidates[0].matrices[0];  // the base format until the budget decides
      }
      if (calibrate && propagates_quantized(request_)) forward(l, quantized_layer(w, used));
      if (calibrate && !propagates_quantized(request_)) forward(l, dense_layer(w));
      keep_changed_tensors(l, w);
      release_layer(l);
      // Each layer's Hessians, activations and row chunks (hundreds of MB on qwen2.5-0.5b) are
      // freed by now: without this the heap keeps them and grows layer by layer. Not the bounded
      // policy: its page faults on every large block cost a third of the time here.
      return_free_memory();
    }
    quantize_tables(calibrate);
    if (request_.bits > 0 && request_.split_table_rows == 0) allocate();
    return write(out, alphas);
  }

 private:
  // Tokens, and the skeleton decoder whose blocks are filled in one layer at a time.
  void start_calibration() {
    const int64_t window = request_.window > 0 ? request_.window : std::min<int64_t>(512, config_.context_length());
    tokenizer_ = load_tokenizer(source_.tokenizer);
    calibration_ = read_calibration_text(*tokenizer_, request_.calibration, request_.calibration_tokens,
                                         std::min(window, request_.calibration_tokens));
    at::Tensor table = source_.tensors->get("model.embed_tokens.weight");
    if (table.scalar_type() != at::kFloat && table.scalar_type() != at::kBFloat16) table = table.to(at::kFloat);
    at::Tensor final_norm = source_.tensors->get("model.norm.weight").to(at::kFloat);
    skeleton_ = std::make_unique<Decoder>(config_, Embedding::dense(table), std::vector<DecoderLayer>(config_.num_layers),
                                          final_norm, Linear());
    require(calibration_.windows.max().item<int64_t>() < config_.vocab_size, ErrorCode::kInvalidArgument,
            "the tokenizer produced ids beyond the model's vocabulary");
    hidden_ = skeleton_->embed(calibration_.windows);
  }

  at::Tensor tensor(const std::string& name) const { return source_.tensors->get(name).to(at::kFloat).contiguous(); }

  LayerWeights load_layer(int64_t l) const {
    const std::string p = layer_prefix(l);
    LayerWeights w;
    w.attn_norm = tensor(p + "input_layernorm.weight");
    w.mlp_norm = tensor(p + "post_attention_layernorm.weight");
    for (int i = 0; i < kProjections; ++i) {
      const std::string name = p + kProjectionNames[i];
      w.weight[i] = tensor(name + ".weight");
      if (source_.tensors->contains(name + ".bias")) w.bias[i] = tensor(name + ".bias");
    }
    return w;
  }

  void release_layer(int64_t l) const {
    for (const char* name : kProjectionNames) source_.tensors->release(layer_prefix(l) + name + ".weight");
  }

  DecoderLayer dense_layer(const LayerWeights& w) const {
    DecoderLayer layer;
    layer.attn_norm = w.attn_norm;
    layer.mlp_norm = w.mlp_norm;
    Linear* slots[kProjections] = {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down};
    for (int p = 0; p < kProjections; ++p) *slots[p] = Linear::dense(w.weight[p], w.bias[p]);
    return layer;
  }

  DecoderLayer quantized_layer(const LayerWeights& w, const std::array<std::shared_ptr<const QuantizedMatrix>, kProjections>& m) const {
    DecoderLayer layer;
    layer.attn_norm = w.attn_norm;
    layer.mlp_norm = w.mlp_norm;
    Linear* slots[kProjections] = {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down};
    for (int p = 0; p < kProjections; ++p) *slots[p] = Linear::quantized(m[p], w.bias[p]);
    return layer;
  }

  // Runs every calibration window through block l; `keep` gets each batch's output.
  template <typename Keep>
  void run_block(int64_t l, DecoderLayer layer, Keep&& keep) {
    skeleton_->layers()[l] = std::move(layer);
    const int64_t windows = hidden_.size(0), per_batch = std::max<int64_t>(1, kTokensPerBatch / hidden_.size(1));
    for (int64_t b = 0; b < windows; b += per_batch) {
      const int64_t n = std::min(per_batch, windows - b);
      const AttentionContext ctx = skeleton_->attention_context(ForwardInput{calibration_.windows.narrow(0, b, n), {}, {}, nullptr});
      keep(b, n, skeleton_->block(l, hidden_.narrow(0, b, n), ctx));
    }
    skeleton_->layers()[l] = DecoderLayer();
  }

  // The statistics of the layer's four inputs, with the full-precision layer.
  std::array<InputMoments, kInputs> collect(int64_t l, const LayerWeights& w) {
    DecoderLayer layer = dense_layer(w);
    std::array<std::shared_ptr<InputStats>, kInputs> stats;
    Linear* watched[kInputs] = {&layer.q, &layer.o, &layer.gate, &layer.down};
    for (int i = 0; i < kInputs; ++i) {
      stats[i] = std::make_shared<InputStats>(watched[i]->in_features());
      watched[i]->set_adapter(std::make_shared<StatsProbe>(stats[i]));
    }
    run_block(l, std::move(layer), [](int64_t, int64_t, const at::Tensor&) {});
    std::array<InputMoments, kInputs> moments;
    for (int i = 0; i < kInputs; ++i) moments[i] = {stats[i]->hessian(), stats[i]->mean_abs()};
    return moments;
  }

  void forward(int64_t l, DecoderLayer layer) {
    at::Tensor next = at::empty_like(hidden_);
    run_block(l, std::move(layer), [&](int64_t b, int64_t n, const at::Tensor& out) { next.narrow(0, b, n).copy_(out); });
    hidden_ = next;
  }

  // AWQ: per-channel scales for each input, searched, then folded into what produces the input
  // (awq_fold.h); the input statistics follow the scaling.
  Json scale_channels(LayerWeights& w, std::array<InputMoments, kInputs>& in) {
    using P = LayerWeights;
    const QuantFormat f = request_.format;
    const WeightRounder round = [f](const at::Tensor& x) { return round_trip_absmax(x, f); };
    Json alphas = Json::object();
    const auto search = [&](const char* name, std::vector<int> projections, InputMoments& m, const at::Tensor& mean_abs) {
      std::vector<at::Tensor> weights;
      for (int p : projections) weights.push_back(w.weight[p]);
      const AwqResult r = awq_search(weights, m.hessian, mean_abs, round, request_.options.awq);
      const at::Tensor sd = r.scales.to(at::kDouble);
      m.hessian = m.hessian / at::outer(sd, sd);
      m.mean_abs = m.mean_abs / sd;
      alphas[name] = r.alpha;
      return r.scales;
    };
    ChannelScales s;
    s.qkv = search("qkv", {P::kQ, P::kK, P::kV}, in[0], in[0].mean_abs);
    s.gate_up = search("gate_up", {P::kGate, P::kUp}, in[2], in[2].mean_abs);
    // Query heads sharing a KV head share its rows of v, so their channels share one scale:
    // searched from the group's mean magnitudes.
    const int64_t kv = config_.num_kv_heads, group = config_.num_heads / kv, d = config_.head_dim;
    const at::Tensor tied = in[1].mean_abs.view({kv, group, d}).mean(1, true).expand({kv, group, d}).reshape({-1});
    s.o = search("o", {P::kO}, in[1], tied);
    s.down = search("down", {P::kDown}, in[3], in[3].mean_abs);
    fold_channel_scales(w, s, config_);
    return alphas;
  }

  std::vector<QuantFormat> candidate_formats(const std::string& prefix = "") const {
    if (auto fixed = request_.fixed_formats.find(prefix); fixed != request_.fixed_formats.end()) return {fixed->second};
    std::vector<QuantFormat> formats = {request_.format};
    const bool knapsack = request_.bits > 0 && request_.split_table_rows == 0;
    if (knapsack && request_.high_format != request_.format) formats.push_back(request_.high_format);
    return formats;
  }

  MatrixResult quantize_projection(const std::string& prefix, const at::Tensor& w, const at::Tensor& hessian) const {
    MatrixResult r;
    r.prefixes = {prefix};
    r.weights = w.numel();
    for (QuantFormat f : candidate_formats(prefix)) {
      auto m = std::make_shared<const QuantizedMatrix>(quantize_matrix_by(w, f, request_.method, hessian, request_.options));
      r.candidates.push_back({f, {m}, request_.bits > 0 ? relative_error(*m, w, hessian) : 0.0});
      return_free_memory();  // each method's working rows, before the next matrix's (0.3 GB held)
    }
    return r;
  }

  // Norms and biases that channel scaling changed go into the folder instead of the source's.
  void keep_changed_tensors(int64_t l, const LayerWeights& w) {
    if (!method_scales_channels(request_.method)) return;
    const std::string p = layer_prefix(l);
    prepared_.tensors[p + "input_layernorm.weight"] = w.attn_norm;
    prepared_.tensors[p + "post_attention_layernorm.weight"] = w.mlp_norm;
    if (w.bias[LayerWeights::kV].defined()) prepared_.tensors[p + "self_attn.v_proj.bias"] = w.bias[LayerWeights::kV];
  }

  // The embedding table and an untied head: one choice of format for both (the folder stores
  // one), rounded by the method with the final hidden states' statistics and judged as the head
  // when calibrated; an untied embedding table by its weight error.
  void quantize_tables(bool calibrate) {
    at::Tensor hessian;
    if (calibrate) {
      InputStats stats(config_.hidden_size);
      stats.add(skeleton_->final_norm(hidden_));
      hessian = stats.hessian();
    }
    std::vector<std::string> prefixes = {"model.embed_tokens"};
    if (!config_.tie_word_embeddings && source_.tensors->contains("lm_head.weight")) prefixes.push_back("lm_head");
    const bool tied = prefixes.size() == 1;
    if (request_.split_table_rows != 0) return split_tables(prefixes, tied, hessian);
    std::vector<QuantFormat> formats;
    if (!request_.embeddings_fixed && request_.bits > 0) {
      formats = candidate_formats();
    } else if (auto f = embedding_quant_format(request_.embeddings)) {
      formats = {*f};
    }
    MatrixResult r;
    r.prefixes = prefixes;
    for (const std::string& prefix : prefixes) {
      const at::Tensor t = source_.tensors->get(prefix + ".weight");
      r.weights += t.numel();
      if (formats.empty()) table_bits_fixed_ += 16.0 * t.numel();  // bf16 tables are not quantized
    }
    if (formats.empty()) {
      table_weights_ = static_cast<double>(r.weights);
      return;
    }
    for (QuantFormat f : formats) {
      Candidate c{f, {}, 0.0};
      for (const std::string& prefix : prefixes) {
        const at::Tensor t = source_.tensors->get(prefix + ".weight");
        // The head's error is what the final hidden states see; codes for the tied table are
        // chosen for the head (measured: the lookups lose far less than the head gains). An
        // untied embedding table has no such statistics: data-free refinement.
        const bool head = tied || prefix == "lm_head";
        c.matrices.push_back(std::make_shared<const QuantizedMatrix>(
            quantize_matrix_by(t, f, table_method(head), head ? hessian : at::Tensor(), request_.options)));
        if (request_.bits > 0) c.error += relative_error(*c.matrices.back(), t, head ? hessian : at::Tensor());
      }
      r.candidates.push_back(std::move(c));
    }
    for (const std::string& prefix : prefixes) source_.tensors->release(prefix + ".weight");
    tables_.push_back(std::move(r));
  }

  QuantMethod table_method(bool head) const {
    return head || !method_needs_calibration(request_.method) ? request_.method : QuantMethod::kHqq;
  }

  QuantFormat rare_table_format() const {
    return request_.embeddings_fixed ? *embedding_quant_format(request_.embeddings) : request_.format;
  }

  // The table (and an untied head) split: the rows of the calibration text's most frequent
  // tokens in high_format, the others in the table's format, each set rounded by the method
  // (it treats rows independently, so a set's rows are those the whole table would get).
  void split_tables(const std::vector<std::string>& prefixes, bool tied, const at::Tensor& hessian) {
    const QuantFormat rare = rare_table_format();
    split_rows_ = request_.split_table_rows > 0 ? request_.split_table_rows : split_rows_in_budget(prefixes.size(), rare);
    const at::Tensor frequent = most_frequent_rows(token_counts(calibration_.windows, config_.vocab_size), split_rows_);
    const at::Tensor frequent_ids = frequent.nonzero().view(-1), rare_ids = frequent.logical_not().nonzero().view(-1);
    for (const std::string& prefix : prefixes) {
      // The source's own type (bf16 for most checkpoints): the method converts a chunk of rows
      // at a time. A float copy of qwen2.5-0.5b's table (544 MB) beside its rows' copies took
      // this step to 2.3 GB.
      const at::Tensor t = source_.tensors->get(prefix + ".weight");
      const bool head = tied || prefix == "lm_head";
      auto part = [&](const at::Tensor& ids, QuantFormat f) {
        return std::make_shared<const QuantizedMatrix>(
            quantize_matrix_by(t.index_select(0, ids), f, table_method(head), head ? hessian : at::Tensor(), request_.options));
      };
      auto split = make_split_table(part(frequent_ids, request_.high_format), part(rare_ids, rare), pack_row_mask(frequent), prefix);
      split_bits_ += split_table_bits(split->rows, split->cols, split_rows_, request_.high_format, rare);
      split_weights_ += static_cast<double>(t.numel());
      prepared_.split_tables[prefix] = std::move(split);
      source_.tensors->release(prefix + ".weight");
    }
  }

  // The most high-precision rows the budget leaves for each table once every projection is in
  // the base format.
  int64_t split_rows_in_budget(size_t tables, QuantFormat rare) const {
    double projection_bits = 0, weights = 0;
    for (const MatrixResult& r : results_) {
      projection_bits += r.candidates[0].bits();
      weights += static_cast<double>(r.weights);
    }
    const int64_t vocab = config_.vocab_size, hidden = config_.hidden_size;
    weights += static_cast<double>(tables * vocab * hidden);
    const double per_table = (request_.bits * weights - projection_bits) / static_cast<double>(tables);
    const int64_t rows = split_rows_within(per_table, vocab, hidden, request_.high_format, rare);
    const std::string bits = "--bits " + c10::str(request_.bits);
    require(rows > 0, ErrorCode::kInvalidArgument,
            bits + " leaves no room for a split table's " + quant_format_name(request_.high_format) + " rows once every projection is " +
                quant_format_name(request_.format) + ": raise --bits");
    require(rows < vocab, ErrorCode::kInvalidArgument,
            bits + " pays for the whole table in " + quant_format_name(request_.high_format) + ": use --embeddings " +
                quant_format_name(request_.high_format) + " instead of --split-table");
    return rows;
  }

  void allocate() {
    std::vector<MatrixResult*> all;
    for (auto& r : results_) all.push_back(&r);
    for (auto& r : tables_) all.push_back(&r);
    std::vector<AllocationItem> items;
    double weights = table_weights_;
    for (const MatrixResult* r : all) {
      AllocationItem item{r->prefixes[0], {}};
      for (const Candidate& c : r->candidates) item.choices.push_back({c.bits(), c.error});
      items.push_back(std::move(item));
      weights += r->weights;
    }
    const double budget = request_.bits * weights - table_bits_fixed_;
    require(budget > 0, ErrorCode::kInvalidArgument, "--bits leaves nothing for the quantized matrices once bf16 tables are counted");
    const std::vector<int> chosen = allocate_bits(items, budget);
    for (size_t i = 0; i < all.size(); ++i) all[i]->chosen = chosen[i];
  }

  QuantizeSummary write(const fs::path& out, const Json& alphas) {
    QuantizationInfo info;
    info.format = request_.format;
    info.embeddings = request_.embeddings;
    info.source_fingerprint = request_.source_fingerprint.empty() ? source_.fingerprint() : request_.source_fingerprint;
    QuantizeSummary summary;
    double bits = table_bits_fixed_, weights = table_weights_, proj_bits = 0, proj_weights = 0;
    Json sensitivity = Json::object();
    for (const MatrixResult& r : results_) {
      const Candidate& c = r.choice();
      prepared_.matrices[r.prefixes[0]] = c.matrices[0];
      if (c.format != request_.format) info.overrides[r.prefixes[0]] = c.format;
      if (request_.bits > 0 && c.format == request_.high_format && request_.high_format != request_.format) ++summary.high_precision;
      proj_bits += c.bits();
      proj_weights += r.weights;
      if (request_.bits > 0) sensitivity[r.prefixes[0]] = r.candidates[0].error;
    }
    for (const MatrixResult& r : tables_) {
      const Candidate& c = r.choice();
      for (size_t i = 0; i < r.prefixes.size(); ++i) prepared_.matrices[r.prefixes[i]] = c.matrices[i];
      info.embeddings = embedding_storage_of(c.format);
      if (request_.bits > 0 && c.format == request_.high_format && request_.high_format != request_.format) ++summary.high_precision;
      bits += c.bits();
      weights += r.weights;
      if (request_.bits > 0) sensitivity[r.prefixes[0]] = r.candidates[0].error;
    }
    if (!prepared_.split_tables.empty()) {
      info.table_split = request_.high_format;
      info.embeddings = embedding_storage_of(rare_table_format());
      bits += split_bits_;
      weights += split_weights_;
      summary.split_table_rows = split_rows_;
    }
    bits += proj_bits;
    weights += proj_weights;
    summary.bits_per_weight = bits / weights;
    summary.projection_bits = proj_bits / proj_weights;
    summary.calibration_tokens = calibration_.windows.defined() ? calibration_.tokens() : 0;
    Json recipe = {{"method", quant_method_name(request_.method)},
                   {"bits_per_weight", summary.bits_per_weight},
                   {"projection_bits_per_weight", summary.projection_bits}};
    if (summary.calibration_tokens > 0) {
      recipe["calibration"] = {{"files", calibration_.files},
                               {"tokens", summary.calibration_tokens},
                               {"window", calibration_.windows.size(1)},
                               {"propagation", propagation_name(request_)}};
    }
    const MethodOptions& o = request_.options;
    if (request_.method == QuantMethod::kGptq || request_.method == QuantMethod::kAwqGptq) {
      recipe["gptq"] = {{"damp", o.gptq.damp}, {"block", o.gptq.block}, {"act_order", o.gptq.act_order}};
    }
    if (method_scales_channels(request_.method)) recipe["awq"] = {{"grid", o.awq.grid}, {"alpha", alphas}};
    if (request_.method == QuantMethod::kHqq) {
      recipe["hqq"] = {{"p", o.hqq.p}, {"beta", o.hqq.beta}, {"kappa", o.hqq.kappa}, {"iterations", o.hqq.iterations}};
    }
    if (!request_.distillation.is_null()) recipe["distillation"] = request_.distillation;
    if (split_rows_ > 0) {
      recipe["table_split"] = {{"frequent_format", quant_format_name(request_.high_format)},
                               {"frequent_rows", split_rows_},
                               {"rows_by", "token counts of the calibration text"}};
    }
    if (request_.bits > 0) {
      recipe["budget"] = {{"bits", request_.bits},
                          {"high_format", quant_format_name(request_.high_format)},
                          {"high_precision_matrices", summary.high_precision},
                          {"sensitivity", sensitivity}};
    }
    info.recipe = recipe;
    summary.recipe = recipe;
    write_quantized_model(out, config_, *source_.tensors, info, source_.tokenizer_files, &prepared_);
    return summary;
  }

  const ModelSource& source_;
  const ModelConfig& config_;
  QuantizeRequest request_;
  std::unique_ptr<Tokenizer> tokenizer_;
  CalibrationText calibration_;
  std::unique_ptr<Decoder> skeleton_;
  at::Tensor hidden_;  // fp32 [windows, length, hidden]: the current layer's input
  std::vector<MatrixResult> results_, tables_;
  double table_bits_fixed_ = 0, table_weights_ = 0;
  double split_bits_ = 0, split_weights_ = 0;
  int64_t split_rows_ = 0;
  PreparedWeights prepared_;
};

}  // namespace

namespace {

void check_split_request(const QuantizeRequest& r, const ModelConfig& config) {
  require(!r.calibration.empty(), ErrorCode::kInvalidArgument,
          "--split-table picks its rows by the calibration text's token counts: add --calibrate FILES");
  require(r.split_table_rows == kSplitRowsByBudget || (r.split_table_rows > 0 && r.split_table_rows < config.vocab_size),
          ErrorCode::kInvalidArgument,
          "--split-table takes a row count between 1 and " + std::to_string(config.vocab_size - 1) + " (the vocabulary less one), or auto");
  require(r.split_table_rows != kSplitRowsByBudget || r.bits > 0, ErrorCode::kInvalidArgument,
          "--split-table auto sizes the table by the budget: add --bits");
  require(r.split_table_rows == kSplitRowsByBudget || r.bits == 0, ErrorCode::kInvalidArgument,
          "--split-table with a row count takes no --bits: use --split-table auto to size it by the budget");
  const std::optional<QuantFormat> rare = r.embeddings_fixed ? embedding_quant_format(r.embeddings) : r.format;
  require(rare && *rare != r.high_format, ErrorCode::kInvalidArgument,
          std::string("a split table keeps its other rows in a smaller packed format than ") + quant_format_name(r.high_format) +
              ": use --embeddings nf4-32, nf4 or int4 (or leave --embeddings out for the projections' format)");
}

}  // namespace

const char* propagation_name(const QuantizeRequest& r) { return propagates_quantized(r) ? "quantized" : "full_precision"; }

Propagation parse_propagation(const std::string& name) {
  if (name == "auto") return Propagation::kAuto;
  if (name == "quantized") return Propagation::kQuantized;
  require(name == "fp", ErrorCode::kInvalidArgument, "--propagate must be auto, quantized or fp, not \"" + name + "\"");
  return Propagation::kFullPrecision;
}

void check_quantize_request(const QuantizeRequest& r, const ModelConfig& config) {
  require(!method_needs_calibration(r.method) || !r.calibration.empty(), ErrorCode::kInvalidArgument,
          std::string("--method ") + quant_method_name(r.method) + " needs calibration text: add --calibrate FILES");
  require(r.bits == 0 || (std::isfinite(r.bits) && r.bits >= 2 && r.bits <= 16), ErrorCode::kInvalidArgument,
          "--bits must be between 2 and 16 (average bits per weight), or 0 for none");
  require(r.calibration_tokens > 0, ErrorCode::kInvalidArgument, "--calib-tokens must be positive");
  require(r.window >= 0 && r.window <= config.context_length(), ErrorCode::kInvalidArgument,
          "the calibration window exceeds the model's context of " + std::to_string(config.context_length()));
  require(!r.embeddings_fixed || r.bits == 0 || embedding_quant_format(r.embeddings), ErrorCode::kInvalidArgument,
          "a bit budget counts quantized matrices only; use --embeddings int8, nf4 or int4 with --bits");
  require(r.fixed_formats.empty() || r.bits == 0, ErrorCode::kInternal, "projections with fixed formats take no bit budget");
  if (r.split_table_rows != 0) check_split_request(r, config);
}

QuantizeSummary quantize_model_folder(const fs::path& out, const ModelSource& source, const QuantizeRequest& request) {
  require(!source.quantization, ErrorCode::kInvalidArgument, "the model is already quantized; quantize its full-precision source");
  return Pipeline(source, request).run(out);
}

}  // namespace hearth
