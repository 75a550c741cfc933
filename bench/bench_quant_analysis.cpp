// Where a quantized base loses its quality: analysis behind docs/quantization.md's ≤ 4.5-bit
// work. `matrices` measures on the evaluation text itself, so it explains results and never
// chooses a format; `rotate` writes a model to quantize with bench_quant_quality.
//
//   build/bench/bench_quant_analysis matrices --quantized DIR [--calibration FILE [--int8-rows N,...]] [--table-only] [--folder-weights] [--model DIR] [--eval FILE] [--ctx N]
//       the quantized folder's projections dequantized and scored with an fp32 table; then that
//       table rounded (int4/5/6/8 and nf4-32, 32-wide blocks, plain rounding; with a calibration
//       text, the rows of its most frequent tokens int8 and the rest nf4-32, for 12.5-50% of
//       the rows or the counts --int8-rows gives); then each
//       projection alone put back to fp32. --folder-weights: the norms and the table are the
//       folder's too (a distilled folder tuned them), the table rounded from its stored rows
//   build/bench/bench_quant_analysis rotate --work DIR [--model DIR] [--rotation orthogonal|hadamard|none] [--seed S]
//       the model with its residual stream rotated (incoherence processing), as an fp32 folder
// Both take --threads N (default 2).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/runtime.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/quant/quant.h"
#include "inference/split_table.h"
#include "inference/split_table_plan.h"
#include "inference/tensor_source.h"

using namespace hearth;
namespace fs = std::filesystem;

namespace {

struct Options {
  fs::path model = asset_path("models/stories260K");
  fs::path eval = asset_path("data/tinystories/valid_a.txt");
  fs::path quantized;
  fs::path calibration;  // matrices: token frequencies for the mixed table
  bool table_only = false;  // matrices: skip the projections one by one
  bool folder_weights = false;  // matrices: norms and table from the folder (a distilled one tuned them)
  std::vector<int64_t> int8_rows;  // matrices: row counts of the mixed table (default: shares of 12.5-50%)
  fs::path work = "/tmp/quant-analysis";
  std::string rotation = "orthogonal";
  uint64_t seed = 1;
  int64_t ctx = 256;
};

const char* const kProjections[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
const char* const kTable = "model.embed_tokens.weight";

std::string projection_name(size_t layer, const char* projection) {
  return "model.layers." + std::to_string(layer) + "." + projection + ".weight";
}

// Writes `tensors` as an fp32 folder in `scratch` and returns its perplexity on `stream`.
double score(const ModelSource& source, const TensorSource& tensors, const fs::path& scratch,
             const std::vector<int32_t>& stream, int64_t ctx) {
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  write_hf_files(scratch, source.config, tensors, source.tokenizer_files, at::kFloat);
  LoadedModel m = load_model(scratch, LoadOptions{});
  return evaluate_perplexity(*m.decoder, stream, ctx).perplexity;
}

// Symmetric uniform rounding to `bits` against each 32-wide block's absmax.
at::Tensor round_uniform_32(const at::Tensor& w, int bits) {
  const at::Tensor blocks = w.reshape({-1, 32});
  const at::Tensor step = blocks.abs().amax(1, true).clamp_min(1e-12f) / float((1 << (bits - 1)) - 1);
  return (at::round(blocks / step) * step).reshape(w.sizes());
}

void matrices_table(const Options& o) {
  ModelSource source = open_model_source(o.model);
  LoadedModel fp = load_model(o.model, LoadOptions{});
  LoadedModel q = load_model(o.quantized, LoadOptions{});
  const std::vector<int32_t> stream = perplexity_token_stream(*fp.tokenizer, read_file(o.eval));
  const double fp32 = evaluate_perplexity(*fp.decoder, stream, o.ctx).perplexity;
  // The source's weights with the folder's projections; a distilled folder's norms and table were
  // tuned together with its projections, so with --folder-weights they come from the folder too.
  // Biases (never tuned) stay the source's.
  TensorMap dequantized;
  for (const std::string& n : source.tensors->names()) dequantized.add(n, source.tensors->get(n).to(at::kFloat));
  for (const auto& [n, t] : weights_fp32(*q.decoder))
    if (o.folder_weights || n.find("_proj.weight") != std::string::npos) dequantized.add(n, t);
  const fs::path scratch = o.work / "scored";
  auto row = [&](const std::string& what, const TensorSource& tensors) {
    const double ppl = score(source, tensors, scratch, stream, o.ctx);
    std::printf("%-40s %10.4f %+8.2f%%\n", what.c_str(), ppl, 100 * (ppl / fp32 - 1));
    std::fflush(stdout);
  };
  std::printf("%s, projections of %s; fp32 ppl %.4f\n", o.eval.filename().c_str(), o.quantized.c_str(), fp32);
  row(o.folder_weights ? "the folder's weights, table as stored" : "projections quantized, table fp32", dequantized);
  const at::Tensor table = dequantized.get(kTable);
  for (int bits : {4, 5, 6, 8}) {
    TensorMap t = dequantized;
    t.add(kTable, round_uniform_32(table, bits));
    row("... table int" + std::to_string(bits) + " (rounded)", t);
  }
  const at::Tensor nf4_rows = dequantize_matrix(quantize_matrix(table, QuantFormat::kNF4_32));
  TensorMap nf4_table = dequantized;
  nf4_table.add(kTable, nf4_rows);
  row("... table nf4-32 (rounded)", nf4_table);
  if (!o.calibration.empty()) {
    // Rows of the tokens most frequent in the calibration text int8, the others nf4-32.
    const std::vector<int32_t> calib = perplexity_token_stream(*fp.tokenizer, read_file(o.calibration));
    at::Tensor counts = at::zeros({table.size(0)}, at::kLong);
    for (int32_t t : calib) counts[t] += 1;
    const at::Tensor order = at::argsort(counts, 0, /*descending=*/true);
    const at::Tensor int8_rows = round_uniform_32(table, 8);
    // The folder's own table rows (GPTQ treats rows independently, so these are the rows a
    // split table's 4-bit part would hold), when the folder's table is quantized.
    std::vector<std::pair<std::string, at::Tensor>> bases = {{"nf4-32 rounded", nf4_rows}};
    const auto& stored = q.decoder->embedding().quantized_table();
    if (stored && stored->format == QuantFormat::kNF4_32)
      bases.push_back({"the folder's", dequantize_matrix(*q.decoder->embedding().quantized_table())});
    // Rare rows (byte-fallback pieces, mostly) are read by few tokens; in fewer bits they leave
    // room in the budget for more int8 rows.
    bases.push_back({"int3 rounded", round_uniform_32(table, 3)});
    bases.push_back({"ternary rounded", round_uniform_32(table, 2)});
    std::vector<int64_t> row_counts = o.int8_rows;
    if (row_counts.empty())
      for (double share : {0.125, 0.25, 0.375, 0.46, 0.5}) row_counts.push_back(int64_t(share * double(table.size(0))));
    for (const auto& [base_name, base_rows] : bases) {
      for (const int64_t n : row_counts) {
        const double share = double(n) / double(table.size(0));
        const at::Tensor top = order.narrow(0, 0, n);
        at::Tensor mixed = base_rows.clone();
        mixed.index_copy_(0, top, int8_rows.index_select(0, top));
        const double covered = counts.index_select(0, top).sum().item<double>() / double(calib.size());
        TensorMap t = dequantized;
        t.add(kTable, mixed);
        char what[128];
        std::snprintf(what, sizeof what, "... table %.0f%% rows int8 (%.0f%% of tokens), rest %s", 100 * share, 100 * covered,
                      base_name.c_str());
        row(what, t);
      }
    }
    // The same through the library's split table (split_table.h), as `hearth quantize --split-table` stores it.
    for (const int64_t n : row_counts) {
      const auto split = split_table_from(table, most_frequent_rows(counts, n), QuantFormat::kInt8, QuantFormat::kNF4_32);
      TensorMap t = dequantized;
      t.add(kTable, split_table_rows_fp32(*split, 0, table.size(0)));
      row("... split table, " + std::to_string(n) + " rows int8", t);
    }
  }
  if (o.table_only) return;
  for (size_t l = 0; l < q.decoder->layers().size(); ++l) {
    for (const char* p : kProjections) {
      TensorMap t = dequantized;
      t.add(projection_name(l, p), source.tensors->get(projection_name(l, p)).to(at::kFloat));
      row("... table fp32, " + std::to_string(l) + "." + p + " fp32", t);
    }
  }
}

// An n × n orthogonal matrix: the Q of a Gaussian matrix's QR (signs fixed by R's diagonal), a
// Sylvester Hadamard matrix with random column signs (n a power of two), or the identity.
at::Tensor rotation_matrix(const std::string& kind, int64_t n, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  if (kind == "none") return at::eye(n, at::kDouble);
  if (kind == "hadamard") {
    if ((n & (n - 1)) != 0) throw Error(ErrorCode::kInvalidArgument, "--rotation hadamard needs a power-of-two width");
    at::Tensor h = at::ones({1, 1}, at::kDouble);
    while (h.size(0) < n) h = at::cat({at::cat({h, h}, 1), at::cat({h, -h}, 1)}, 0);
    const at::Tensor signs = at::randint(0, 2, {n}, gen, at::kDouble) * 2 - 1;
    return h * signs.unsqueeze(0) / std::sqrt(double(n));
  }
  auto [q, r] = at::linalg_qr(at::normal(0, 1, {n, n}, gen, at::kDouble));
  return q * at::sign(at::diagonal(r)).unsqueeze(0);
}

// The same function with the residual stream h replaced by h Q: every norm's weight folded into
// the projections that read it (the norms become 1, which RMSNorm(hQ) = RMSNorm(h) Q needs),
// readers W ← W diag(g) Q, writers W ← Qᵀ W, the table E ← E Q, and the head, which the final
// norm now folds into, untied. Llama-style models only (no q/k or sandwich norms).
void rotate_model(const Options& o) {
  ModelSource source = open_model_source(o.model);
  const ModelConfig& c = source.config;
  if (c.qk_norm() || c.sandwich_norms()) throw Error(ErrorCode::kInvalidArgument, "rotate: Llama-style models only");
  const at::Tensor q = rotation_matrix(o.rotation, c.hidden_size, o.seed);
  auto get = [&](const std::string& n) { return source.tensors->get(n).to(at::kDouble); };
  TensorMap out;
  auto put = [&](const std::string& n, const at::Tensor& t) { out.add(n, t.to(at::kFloat).contiguous()); };
  const at::Tensor embed = get(kTable);
  const at::Tensor head = c.tie_word_embeddings ? embed : get("lm_head.weight");
  put(kTable, embed.matmul(q));
  put("lm_head.weight", (head * get("model.norm.weight").unsqueeze(0)).matmul(q));
  put("model.norm.weight", at::ones({c.hidden_size}));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const at::Tensor attn_norm = get(p + "input_layernorm.weight").unsqueeze(0);
    const at::Tensor mlp_norm = get(p + "post_attention_layernorm.weight").unsqueeze(0);
    for (const char* n : {"q_proj", "k_proj", "v_proj"}) {
      const std::string name = p + "self_attn." + n + ".weight";
      put(name, (get(name) * attn_norm).matmul(q));
    }
    for (const char* n : {"gate_proj", "up_proj"}) {
      const std::string name = p + "mlp." + n + ".weight";
      put(name, (get(name) * mlp_norm).matmul(q));
    }
    for (const char* name : {"self_attn.o_proj.weight", "mlp.down_proj.weight"}) put(p + name, q.t().matmul(get(p + name)));
    put(p + "input_layernorm.weight", at::ones({c.hidden_size}));
    put(p + "post_attention_layernorm.weight", at::ones({c.hidden_size}));
  }
  for (const std::string& n : source.tensors->names())
    if (!out.contains(n)) put(n, get(n));
  ModelConfig rotated = c;
  rotated.tie_word_embeddings = false;
  const fs::path dir = o.work / ("rotated-" + o.rotation + "-" + std::to_string(o.seed));
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_hf_files(dir, rotated, out, source.tokenizer_files, at::kFloat);
  // The rotation must not change what the fp32 model computes (float rounding aside).
  LoadedModel before = load_model(o.model, LoadOptions{});
  LoadedModel after = load_model(dir, LoadOptions{});
  const std::vector<int32_t> stream = perplexity_token_stream(*before.tokenizer, read_file(o.eval));
  std::printf("%s: fp32 ppl %.5f, rotated (%s, seed %llu) %.5f\n", dir.c_str(),
              evaluate_perplexity(*before.decoder, stream, o.ctx).perplexity, o.rotation.c_str(),
              static_cast<unsigned long long>(o.seed), evaluate_perplexity(*after.decoder, stream, o.ctx).perplexity);
}

// "123,217" -> {123, 217}
std::vector<int64_t> parse_counts(const std::string& list) {
  std::vector<int64_t> counts;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    counts.push_back(std::stoll(list.substr(start, comma - start)));
    start = comma + 1;
  }
  return counts;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  Options o;
  int threads = 2;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--threads" && has_value) threads = std::stoi(argv[++i]);
    else if (a == "--model" && has_value) o.model = argv[++i];
    else if (a == "--eval" && has_value) o.eval = argv[++i];
    else if (a == "--quantized" && has_value) o.quantized = argv[++i];
    else if (a == "--calibration" && has_value) o.calibration = argv[++i];
    else if (a == "--table-only") o.table_only = true;
    else if (a == "--folder-weights") o.folder_weights = true;
    else if (a == "--int8-rows" && has_value) o.int8_rows = parse_counts(argv[++i]);
    else if (a == "--work" && has_value) o.work = argv[++i];
    else if (a == "--rotation" && has_value) o.rotation = argv[++i];
    else if (a == "--seed" && has_value) o.seed = std::stoull(argv[++i]);
    else if (a == "--ctx" && has_value) o.ctx = std::stoll(argv[++i]);
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (!(mode == "rotate" || (mode == "matrices" && !o.quantized.empty()))) {
    std::fprintf(stderr, "usage: bench_quant_analysis matrices --quantized DIR | rotate --work DIR (see the file's header)\n");
    return 2;
  }
  init_runtime(threads);
  try {
    if (mode == "matrices") matrices_table(o);
    if (mode == "rotate") rotate_model(o);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
