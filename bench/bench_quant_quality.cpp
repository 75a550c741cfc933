// Quality of quantized bases on real weights, two tables.
//
// formats: stories260K perplexity on tinystories/valid_a.txt (ctx 256, the project's protocol)
// for fp32, int8, nf4 and int4 by plain rounding at load time, with the bits per weight actually
// stored and the ratio to fp32; a second figure scores the first windows one token at a time
// through the KV cache (the decode GEMV, int8 activations on AVX-512 VNNI) against the exact
// float GEMV.
//
// methods: every quantization method (rtn, hqq, awq, gptq, awq-gptq) x configuration (nf4 or
// int4 projections with int8 embeddings, or a bit budget), each written by the library's
// `hearth quantize` path into a folder, loaded from it and scored. Calibration text must not be
// the evaluation text: by default (--calibrate generated) it is sampled from the fp32 model
// itself (TinyStories-like stories, seeds 1, 2, ..., temperature 1), written to the work folder.
//
//   build/bench/bench_quant_quality                      # both tables for stories260K
//   build/bench/bench_quant_quality formats [--embeddings int8|nf4|int4|bf16]
//   build/bench/bench_quant_quality methods [--model DIR] [--eval FILE] [--calibrate generated|FILE...]
//       [--methods rtn,hqq,...] [--configs nf4,nf4-32,int4,b4.5,nf4-32/b4.5,nf4-32:split/b4.5,...] [--calib-tokens N] [--ctx N] [--work DIR]
//       [--distill-steps N] [--distill-lr R] [--distill-batch W] [--distill-seed S] [--distill-average F]
//   build/bench/bench_quant_quality blocks [--model DIR] [--eval FILE] [--work DIR]
//       (what NF4 at 64-, 32- and 16-wide blocks would score: rounded, written as fp32, scored)
// Every mode takes --threads N (default 2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/runtime.h"
#include "inference/calibrated_quantize.h"
#include "inference/generator.h"
#include "inference/kv_cache.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/quant/quant_grid.h"
#include "inference/tensor_source.h"
#include "inference/perplexity.h"
#include "inference/quant/quant.h"
#include "inference/quant/quant_kernels.h"
#include "trainer/quantization_distillation.h"

using namespace hearth;
namespace fs = std::filesystem;

namespace {

// Bits per stored weight over the projections only (the formats' own overhead).
double projection_bits(const Decoder& d) {
  double bits = 0, weights = 0;
  for (const auto& layer : d.layers()) {
    for (const Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down}) {
      bits += 8.0 * l->weight_bytes();
      weights += double(l->in_features()) * l->out_features();
    }
  }
  return bits / weights;
}

// Perplexity of the first `windows` windows of ctx+1 tokens, each token fed alone through the
// KV cache as generation does.
double decode_path_perplexity(const Decoder& d, const std::vector<int32_t>& stream, int64_t ctx, int64_t windows) {
  double nll = 0;
  int64_t scored = 0;
  for (int64_t w = 0; w < windows && (w + 1) * (ctx + 1) <= int64_t(stream.size()); ++w) {
    KVCache cache(d.config(), 1, ctx + 1);
    for (int64_t t = 0; t < ctx; ++t) {
      const int64_t i = w * (ctx + 1) + t;
      at::Tensor token = at::full({1, 1}, int64_t(stream[i]), at::kLong);
      at::Tensor logits = d.forward({token, {}, {}, &cache}).reshape({-1}).to(at::kDouble);
      nll -= at::log_softmax(logits, 0)[stream[i + 1]].item<double>();
      ++scored;
    }
  }
  return std::exp(nll / double(scored));
}

void formats_table(const std::string& embeddings) {
  const auto model = asset_path("models/stories260K");
  const std::string text = read_file(asset_path("data/tinystories/valid_a.txt"));
  std::printf("stories260K on tinystories/valid_a.txt, ctx 256, embeddings/head %s when quantized\n", embeddings.c_str());
  constexpr int64_t kDecodeWindows = 16;
  std::printf("decode ppl: first %lld windows token by token; exact = float GEMV, kernels = %s\n",
              static_cast<long long>(kDecodeWindows), active_kernels().name);
  std::printf("%-6s %10s %10s %12s %14s %12s %12s %10s\n", "format", "ppl", "vs fp32", "proj bits/w", "weights MB",
              "decode exact", "decode used", "used/exact");
  double fp32 = 0;
  for (const char* format : {"fp32", "int8", "nf4", "int4"}) {
    LoadOptions options;
    options.row_tiles = false;  // bits as stored: weight_bytes() counts row tiles too
    if (std::strcmp(format, "fp32") != 0) {
      options.quant = parse_quant_format(format);
      options.embeddings = parse_embedding_storage(embeddings);
    }
    LoadedModel m = load_model(model, options);
    const std::vector<int32_t> stream = perplexity_token_stream(*m.tokenizer, text);
    PerplexityResult r = evaluate_perplexity(*m.decoder, stream, 256);
    if (fp32 == 0) fp32 = r.perplexity;
    const KernelIsa best = cpu_supports_isa(KernelIsa::kAvx512) ? KernelIsa::kAvx512 : KernelIsa::kScalar;
    force_kernel_isa(best);  // the float GEMV: no activation rounding
    const double exact = decode_path_perplexity(*m.decoder, stream, 256, kDecodeWindows);
    force_kernel_isa(KernelIsa::kAuto);
    const double used = decode_path_perplexity(*m.decoder, stream, 256, kDecodeWindows);
    std::printf("%-6s %10.4f %+9.2f%% %12.3f %14.3f %12.4f %12.4f %+9.2f%%\n", format, r.perplexity, 100 * (r.perplexity / fp32 - 1),
                projection_bits(*m.decoder), m.decoder->weight_bytes() / 1e6, exact, used, 100 * (used / exact - 1));
  }
}

struct MethodsOptions {
  fs::path model = asset_path("models/stories260K");
  fs::path eval = asset_path("data/tinystories/valid_a.txt");
  std::vector<std::string> calibrate = {"generated"};
  std::vector<std::string> methods = {"rtn", "hqq", "awq", "gptq", "awq-gptq"};
  std::vector<std::string> configs = {"nf4", "int4", "b4.5"};
  int64_t calib_tokens = 8192;
  int64_t ctx = 256;
  Propagation propagation = Propagation::kQuantized;  // the acceptance table's protocol
  MethodOptions method_options;
  trainer::DistillOptions distill;
  fs::path work = fs::temp_directory_path() / "hearth_bench_quant_quality";
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// TinyStories-like calibration text sampled from the fp32 model (never the evaluation text):
// stories from BOS with seeds 1, 2, ... at temperature 1 until `tokens` tokens, one per line.
fs::path generated_calibration(const MethodsOptions& o) {
  const fs::path file = o.work / ("generated_" + std::to_string(o.calib_tokens) + ".txt");
  if (fs::exists(file)) return file;
  LoadedModel m = load_model(o.model, LoadOptions{});
  GenerationOptions g;
  g.max_tokens = 256;
  g.sampling.temperature = 1.0f;
  g.sampling.top_k = 0;
  g.sampling.top_p = 1.0f;
  std::string text;
  int64_t tokens = 0;
  for (uint64_t seed = 1; tokens < o.calib_tokens + o.calib_tokens / 4; ++seed) {
    g.sampling.seed = seed;
    GenerationResult r = generate(*m.decoder, *m.tokenizer, {m.tokenizer->bos_id()}, g);
    std::string story = r.text;
    for (char& c : story)
      if (c == '\n') c = ' ';
    text += story + "\n";
    tokens += static_cast<int64_t>(r.tokens.size()) + 1;
  }
  write_file_atomic(file, text);
  return file;
}

struct Config {
  std::string name;
  QuantFormat format = QuantFormat::kNF4;
  EmbeddingStorage embeddings = EmbeddingStorage::kInt8;
  double bits = 0;
  bool embeddings_fixed = true;
  bool split_table = false;
};

// "nf4", "nf4-32", "int4", "int8": every projection in that format; ":FORMAT" after it sets the
// table's ("int8:nf4"); "b4.5": a budget of 4.5 bits over an nf4 base, the table chosen too;
// "nf4-32/b4.5": the same over another base; "nf4-32:split/b4.5": every projection nf4-32 and
// the table split, its most frequent rows int8 as many as the budget leaves (split_table.h).
Config parse_config(const std::string& name) {
  const size_t split = name.find(":split/b");
  if (split != std::string::npos) {
    Config c = parse_config(name.substr(0, split) + name.substr(split + 6));
    c.name = name;
    c.split_table = true;
    return c;
  }
  Config c;
  c.name = name;
  const size_t slash = name.find("/b");
  const std::string budget = slash != std::string::npos ? name.substr(slash + 1) : name;
  if (slash != std::string::npos || (name.size() > 1 && name[0] == 'b')) {
    if (slash != std::string::npos) c.format = parse_quant_format(name.substr(0, slash));
    c.bits = std::stod(budget.substr(1));
    c.embeddings_fixed = false;
    return c;
  }
  const size_t colon = name.find(':');
  if (colon != std::string::npos) c.embeddings = parse_embedding_storage(name.substr(colon + 1));
  try {
    c.format = parse_quant_format(name.substr(0, colon));
  } catch (const Error&) {
    fail(ErrorCode::kInvalidArgument, "unknown configuration " + name +
                                          " (a format optionally :table format, b<bits>, or format/b<bits>)");
  }
  return c;
}

void methods_table(const MethodsOptions& o) {
  fs::create_directories(o.work);
  std::vector<fs::path> calibration;
  for (const std::string& c : o.calibrate) calibration.push_back(c == "generated" ? generated_calibration(o) : fs::path(c));
  const std::string text = read_file(o.eval);
  LoadedModel fp = load_model(o.model, LoadOptions{});
  const std::vector<int32_t> stream = perplexity_token_stream(*fp.tokenizer, text);
  const double fp32 = evaluate_perplexity(*fp.decoder, stream, o.ctx).perplexity;
  std::printf("%s on %s, ctx %lld, %zu tokens; fp32 ppl %.4f\n", o.model.filename().string().c_str(),
              o.eval.filename().string().c_str(), static_cast<long long>(o.ctx), stream.size(), fp32);
  std::printf("calibration: ");
  for (const auto& c : calibration) std::printf("%s ", c.string().c_str());
  std::printf("(at most %lld tokens); kernels %s\n", static_cast<long long>(o.calib_tokens), active_kernels().name);
  std::printf("%-9s %-6s %10s %9s %10s %10s %6s %8s\n", "method", "config", "ppl", "vs fp32", "bits/w", "proj b/w", "int8", "seconds");
  std::fflush(stdout);
  ModelSource source = open_model_source(o.model);
  for (const std::string& method : o.methods) {
    for (const std::string& config_name : o.configs) {
      const Config c = parse_config(config_name);
      QuantizeRequest request;
      request.method = parse_quant_method(method);
      request.format = c.format;
      request.bits = c.bits;
      request.embeddings = c.embeddings;
      request.embeddings_fixed = c.embeddings_fixed;
      if (c.split_table) request.split_table_rows = kSplitRowsByBudget;
      request.calibration_tokens = o.calib_tokens;
      request.propagation = o.propagation;
      request.options = o.method_options;
      if (method_needs_calibration(request.method) || c.bits > 0 || c.split_table) request.calibration = calibration;
      std::string dir_name = method + "-" + config_name;
      std::replace(dir_name.begin(), dir_name.end(), '/', '_');
      const fs::path dir = o.work / dir_name;
      fs::remove_all(dir);
      const auto t0 = std::chrono::steady_clock::now();
      if (o.distill.steps > 0) request.calibration = calibration;
      const QuantizeSummary s = trainer::quantize_with_distillation(dir, source, request, o.distill);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      LoadedModel q = load_model(dir, LoadOptions{});
      const double ppl = evaluate_perplexity(*q.decoder, stream, o.ctx).perplexity;
      std::printf("%-9s %-6s %10.4f %+8.2f%% %10.3f %10.3f %6lld %8.1f\n", method.c_str(), config_name.c_str(), ppl,
                  100 * (ppl / fp32 - 1), s.bits_per_weight, s.projection_bits, static_cast<long long>(s.high_precision), seconds);
      std::fflush(stdout);
    }
  }
}

// What finer NF4 blocks would buy, before any kernel exists for them: every projection (and,
// in the second half, the table too) rounded to the NF4 grid against the absmax of blocks of
// 64, 32 or 16 weights (fp32 absmaxes: NF4's double quantization is left out, it moves the
// result by far less than the block size does), written as an fp32 folder and scored.
at::Tensor nf4_round_trip_blocks(const at::Tensor& weight, int64_t block) {
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  const int64_t rows = w.size(0), cols = w.size(1), blocks = (cols + block - 1) / block;
  at::Tensor padded = at::zeros({rows, blocks * block});
  padded.narrow(1, 0, cols).copy_(w);
  float* p = padded.data_ptr<float>();
  for (int64_t b = 0; b < rows * blocks; ++b) {
    float* x = p + b * block;
    float absmax = 0;
    for (int64_t j = 0; j < block; ++j) absmax = std::max(absmax, std::fabs(x[j]));
    if (absmax == 0) continue;
    for (int64_t j = 0; j < block; ++j) x[j] = quant_grid_value(QuantFormat::kNF4, quant_grid_nearest(QuantFormat::kNF4, x[j] / absmax)) * absmax;
  }
  return padded.narrow(1, 0, cols).contiguous();
}

void blocks_table(const MethodsOptions& o) {
  ModelSource source = open_model_source(o.model);
  LoadedModel fp = load_model(o.model, LoadOptions{});
  const std::vector<int32_t> stream = perplexity_token_stream(*fp.tokenizer, read_file(o.eval));
  const double fp32 = evaluate_perplexity(*fp.decoder, stream, o.ctx).perplexity;
  std::printf("NF4 round to nearest by block size, fp32 absmaxes; fp32 ppl %.4f\n", fp32);
  std::printf("%-6s %-12s %10s %9s\n", "block", "rounded", "ppl", "vs fp32");
  fs::create_directories(o.work);
  for (const bool table : {false, true}) {
    for (const int64_t block : {64, 32, 16}) {
      TensorMap rounded;
      for (const std::string& name : source.tensors->names()) {
        const at::Tensor t = source.tensors->get(name);
        const bool projection = name.find("_proj.weight") != std::string::npos;
        const bool round = t.dim() == 2 && (projection || (table && name == "model.embed_tokens.weight"));
        rounded.add(name, round ? nf4_round_trip_blocks(t, block) : t.to(at::kFloat));
      }
      const fs::path dir = o.work / ("blocks-" + std::to_string(block) + (table ? "-table" : ""));
      fs::remove_all(dir);
      fs::create_directories(dir);
      write_hf_files(dir, source.config, rounded, source.tokenizer_files, at::kFloat);
      LoadedModel m = load_model(dir, LoadOptions{});
      const double ppl = evaluate_perplexity(*m.decoder, stream, o.ctx).perplexity;
      std::printf("%-6lld %-12s %10.4f %+8.2f%%\n", static_cast<long long>(block), table ? "proj+table" : "projections", ppl,
                  100 * (ppl / fp32 - 1));
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 && argv[1][0] != '-' ? argv[1] : "all";
  std::string embeddings = "int8";
  int threads = 2;
  MethodsOptions o;
  for (int i = mode == "all" ? 1 : 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--threads" && has_value) threads = std::stoi(argv[++i]);
    else if (a == "--embeddings" && has_value) embeddings = argv[++i];
    else if (a == "--model" && has_value) o.model = argv[++i];
    else if (a == "--eval" && has_value) o.eval = argv[++i];
    else if (a == "--methods" && has_value) o.methods = split(argv[++i]);
    else if (a == "--configs" && has_value) o.configs = split(argv[++i]);
    else if (a == "--calib-tokens" && has_value) o.calib_tokens = std::stoll(argv[++i]);
    else if (a == "--ctx" && has_value) o.ctx = std::stoll(argv[++i]);
    else if (a == "--work" && has_value) o.work = argv[++i];
    else if (a == "--propagate" && has_value) o.propagation = parse_propagation(argv[++i]);
    else if (a == "--refit" && has_value) o.method_options.refit_rounds = std::stoi(argv[++i]);
    else if (a == "--damp" && has_value) o.method_options.gptq.damp = std::stod(argv[++i]);
    else if (a == "--gptq-block" && has_value) o.method_options.gptq.block = std::stoll(argv[++i]);
    else if (a == "--no-act-order") o.method_options.gptq.act_order = false;
    else if (a == "--distill-steps" && has_value) o.distill.steps = std::stoll(argv[++i]);
    else if (a == "--distill-lr" && has_value) o.distill.lr = std::stod(argv[++i]);
    else if (a == "--distill-batch" && has_value) o.distill.batch = std::stoll(argv[++i]);
    else if (a == "--distill-seed" && has_value) o.distill.seed = std::stoull(argv[++i]);
    else if (a == "--distill-average" && has_value) o.distill.average = std::stod(argv[++i]);
    else if (a == "--awq-grid" && has_value) o.method_options.awq.grid = std::stoi(argv[++i]);
    else if (a == "--calibrate") {
      o.calibrate.clear();
      while (i + 1 < argc && argv[i + 1][0] != '-') o.calibrate.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  init_runtime(threads);
  try {
    if (mode == "formats" || mode == "all") formats_table(embeddings);
    if (mode == "methods" || mode == "all") methods_table(o);
    if (mode == "blocks") blocks_table(o);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
