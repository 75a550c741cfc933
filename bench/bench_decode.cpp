// Benchmarks generation on the shapes of real checkpoints (seeded random weights): decode and
// prefill tokens/s, weight bytes and peak RSS for each weight format, each configuration in its
// own child process so its peak RSS is its own. Prints a table and ratios; never fails a build.
//
//   bench_decode [--arch a,b] [--formats f,g] [--threads N] [--models DIR] [--decode-tokens N]
//                [--prefill-tokens N] [--passes N] [--rounds N] [--no-aten-pass]
//   bench_decode --one ARCH FORMAT [same options]   (child: prints one JSON line)
// --no-aten-pass leaves out the comparison decode through the layer-by-layer ATen path, so the
// child's peak RSS is generation's alone (that pass pages in LibTorch code generation never runs).
// Formats: fp32 bf16 nf4 nf4-32 int4 int8 (quantized while loading) and nf4-mapped, nf4-32-mapped
// (quantized folders); any of them with "-rowmajor" appended loads without row tiles
// (LoadOptions::row_tiles), the int8 kernels then reading the row-major codes: the baseline that
// measures the tiles in the same run (they exist only on CPUs with AVX-512 VNNI).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/preinit_environment.h"  // OpenMP wait policy and OpenBLAS kernels, as the hearth CLI runs
#include "core/error.h"
#include "core/json.h"
#include "core/threads.h"
#include "core/worker_pool.h"
#include "inference/generator.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/quantized_model_files.h"
#include "inference/split_table.h"
#include "inference/split_table_plan.h"

namespace {

namespace fs = std::filesystem;
using hearth::ErrorCode;

const std::vector<std::string> kAllArchs = {"smollm2-135m", "qwen2.5-0.5b", "llama3.2-1b"};
// "<fmt>-mapped": the same weights from a folder quantized once (hearth quantize's layout) and
// memory-mapped on load, as an app serves them; the plain formats quantize while loading.
// "nf4-32-split-mapped": nf4-32 projections and a split table (split_table.h) holding as many
// int8 rows as 4.5 bits per weight leave, the calibrated format of docs/quantization.md.
const std::vector<std::string> kAllFormats = {"fp32", "bf16", "nf4", "nf4-32", "int4", "int8", "nf4-mapped", "nf4-32-mapped",
                                              "nf4-32-split-mapped"};
const std::string kSplit = "-split";
// What runs without --formats.
const std::vector<std::string> kDefaultFormats = {"fp32", "bf16", "nf4", "int4", "int8", "nf4-mapped"};
const std::string kMapped = "-mapped", kRowMajor = "-rowmajor";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool is_row_major(const std::string& format) { return ends_with(format, kRowMajor); }
// The format without "-rowmajor": which weights to load.
std::string weights_format(const std::string& format) {
  return is_row_major(format) ? format.substr(0, format.size() - kRowMajor.size()) : format;
}
bool is_mapped(const std::string& format) { return ends_with(weights_format(format), kMapped); }
std::string base_format(const std::string& format) {
  const std::string w = weights_format(format);
  return is_mapped(w) ? w.substr(0, w.size() - kMapped.size()) : w;
}

struct Options {
  std::vector<std::string> archs = kAllArchs;
  std::vector<std::string> formats = kDefaultFormats;
  int threads = 2;
  fs::path models = "build/bench-models";
  int decode_tokens = 64;
  int prefill_tokens = 128;
  int passes = 3;  // decode and prefill each measured this many times; the median is reported
  int rounds = 1;  // child processes per configuration, the formats alternating; medians again
  bool aten_pass = true;
  std::string one_arch, one_format;  // set in a child
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    hearth::require(i + 1 < argc, ErrorCode::kInvalidArgument, std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--arch") o.archs = split_list(value(i));
    else if (a == "--formats") o.formats = split_list(value(i));
    else if (a == "--threads") o.threads = std::stoi(value(i));
    else if (a == "--models") o.models = value(i);
    else if (a == "--decode-tokens") o.decode_tokens = std::stoi(value(i));
    else if (a == "--prefill-tokens") o.prefill_tokens = std::stoi(value(i));
    else if (a == "--passes") o.passes = std::max(1, std::stoi(value(i)));
    else if (a == "--rounds") o.rounds = std::max(1, std::stoi(value(i)));
    else if (a == "--no-aten-pass") o.aten_pass = false;
    else if (a == "--one") {
      o.one_arch = value(i);
      o.one_format = value(i);
    } else {
      hearth::fail(ErrorCode::kInvalidArgument, "unknown option " + a +
                                                    " (known: --arch --formats --threads --models --decode-tokens "
                                                    "--prefill-tokens --passes --rounds --no-aten-pass --one)");
    }
  }
  for (const auto& f : o.formats) {
    hearth::require(std::find(kAllFormats.begin(), kAllFormats.end(), weights_format(f)) != kAllFormats.end(),
                    ErrorCode::kInvalidArgument,
                    "unknown format " + f + " (fp32 | bf16 | nf4 | nf4-32 | int4 | int8 | nf4-mapped | nf4-32-mapped | nf4-32-split-mapped, "
                    "each optionally with -rowmajor)");
  }
  return o;
}

hearth::LoadOptions load_options_for(const std::string& format) {
  hearth::LoadOptions o;
  o.row_tiles = !is_row_major(format);
  if (is_mapped(format)) return o;  // the folder names its own format
  const std::string weights = base_format(format);
  if (weights == "bf16") o.compute_dtype = at::kBFloat16;
  else if (weights != "fp32") o.quant = hearth::parse_quant_format(weights);  // embeddings: int8 (the default)
  return o;
}

// Random weights make the model emit any id, including the padding ids past a real tokenizer's
// vocabulary; those decode to nothing here so generation runs to the token limit.
class PaddedTokenizer : public hearth::Tokenizer {
 public:
  explicit PaddedTokenizer(std::shared_ptr<hearth::Tokenizer> inner, int32_t vocab) : inner_(std::move(inner)), vocab_(vocab) {}
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override { return inner_->encode(text, add_bos); }
  std::string decode(const std::vector<int32_t>& ids) const override { return inner_->decode(ids); }
  std::string decode_token(int32_t id) const override { return id < inner_->vocab_size() ? inner_->decode_token(id) : ""; }
  std::string decode_next(int32_t previous, int32_t id) const override {
    return id < inner_->vocab_size() ? inner_->decode_next(previous, id) : "";
  }
  int32_t vocab_size() const override { return vocab_; }

 private:
  std::shared_ptr<hearth::Tokenizer> inner_;
  int32_t vocab_;
};

// A deterministic prompt of ordinary (non-special) token ids.
std::vector<int32_t> prompt_of(int n, int32_t vocab) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = 100 + static_cast<int32_t>((int64_t(i) * 7919) % std::min<int32_t>(vocab - 200, 20000));
  return ids;
}

// CPU seconds this process has used (all threads): under a busy machine, wall time measures
// the neighbours as much as the code, CPU time per token does not.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

long current_rss_kb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// Creates the seeded random model once; later runs reuse the folder.
fs::path ensure_model(const fs::path& root, const std::string& arch) {
  const fs::path dir = root / arch;
  if (!fs::exists(dir / "config.json")) {
    std::fprintf(stderr, "creating %s in %s (once)\n", arch.c_str(), dir.string().c_str());
    fs::create_directories(root);
    hearth::init_random_model(arch, 1, dir);
  }
  return dir;
}

// The random model's table split with as many int8 rows as 4.5 bits per weight leave once every
// projection is in `format` (which rows does not change the speed: the first ones).
std::shared_ptr<const hearth::SplitTable> budget_split_table(const hearth::ModelSource& source, hearth::QuantFormat format) {
  const hearth::ModelConfig& c = source.config;
  const int64_t ff = c.intermediate_size, h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{q, h}, {kv, h}, {kv, h}, {h, q}, {ff, h}, {ff, h}, {h, ff}};
  double projection_bits = 0, weights = double(c.vocab_size * h);
  for (const auto& [rows, cols] : shapes) {
    projection_bits += 8.0 * double(c.num_layers * hearth::packed_storage_bytes(format, rows, cols));
    weights += double(c.num_layers * rows * cols);
  }
  const int64_t rows = hearth::split_rows_within(4.5 * weights - projection_bits, c.vocab_size, h, hearth::QuantFormat::kInt8, format);
  const at::Tensor table = source.tensors->get("model.embed_tokens.weight").to(at::kFloat);
  return hearth::split_table_from(table, at::arange(c.vocab_size, at::kLong) < rows, hearth::QuantFormat::kInt8, format);
}

// The quantized folder for a "-mapped" format, written once from the random model.
fs::path ensure_mapped_model(const fs::path& root, const std::string& arch, const std::string& format) {
  const fs::path dir = root / (arch + "-" + weights_format(format));
  if (!fs::exists(dir / "config.json")) {
    std::fprintf(stderr, "quantizing %s to %s (once)\n", arch.c_str(), dir.string().c_str());
    hearth::ModelSource source = hearth::open_model_source(root / arch);
    hearth::QuantizationInfo info;
    info.source_fingerprint = source.fingerprint();
    hearth::PreparedWeights prepared;
    std::string base = base_format(format);
    if (ends_with(base, kSplit)) {
      base = base.substr(0, base.size() - kSplit.size());
      info.embeddings = hearth::embedding_storage_of(hearth::parse_quant_format(base));
      info.table_split = hearth::QuantFormat::kInt8;
      prepared.split_tables["model.embed_tokens"] = budget_split_table(source, hearth::parse_quant_format(base));
    }
    info.format = hearth::parse_quant_format(base);
    hearth::write_quantized_model(dir, source.config, *source.tensors, info, source.tokenizer_files, &prepared);
  }
  return dir;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Child: one (arch, format). Loads, runs a prefill and a decode, prints one JSON line.
int run_one(const Options& o) {
  hearth::set_num_threads(o.threads);
  const fs::path dir = is_mapped(o.one_format) ? o.models / (o.one_arch + "-" + weights_format(o.one_format)) : o.models / o.one_arch;
  auto t0 = std::chrono::steady_clock::now();
  hearth::LoadedModel m = hearth::load_model(dir, load_options_for(o.one_format));
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long rss_loaded = current_rss_kb();
  const auto& config = m.decoder->config();
  PaddedTokenizer tok(m.tokenizer, static_cast<int32_t>(config.vocab_size));
  hearth::GenerationOptions g;
  g.sampling.temperature = 0;  // greedy
  g.stop_at_stop_tokens = false;

  g.max_tokens = 4;  // warm-up: first-touch of weights, thread pools
  hearth::generate(*m.decoder, tok, prompt_of(8, config.vocab_size), g);

  // Each figure is the median of o.passes runs: on a shared machine a single run is sometimes
  // slowed as a whole (another process, a neighbour on the memory bus), in either format.
  std::vector<double> prefill_rates, decode_rates, decode_cpu_ms, aten_decode_rates;
  int64_t prefill_tokens = 0, decode_tokens = 0;
  for (int pass = 0; pass < o.passes; ++pass) {
    g.max_tokens = 1;
    hearth::GenerationResult prefill = hearth::generate(*m.decoder, tok, prompt_of(o.prefill_tokens, config.vocab_size), g);
    prefill_rates.push_back(prefill.prefill_tokens_per_second());
    prefill_tokens = prefill.prompt_tokens;
    g.max_tokens = o.decode_tokens;
    const double cpu0 = cpu_seconds();
    hearth::GenerationResult decode = hearth::generate(*m.decoder, tok, prompt_of(8, config.vocab_size), g);
    decode_cpu_ms.push_back(1e3 * (cpu_seconds() - cpu0) / std::max<size_t>(1, decode.tokens.size()));
    decode_rates.push_back(decode.decode_tokens_per_second());
    decode_tokens = static_cast<int64_t>(decode.tokens.size());
    // The same decode through the layer-by-layer ATen path, in the same pass: the plan's gain.
    if (!o.aten_pass) continue;
    g.prepared_decode = false;
    aten_decode_rates.push_back(hearth::generate(*m.decoder, tok, prompt_of(8, config.vocab_size), g).decode_tokens_per_second());
    g.prepared_decode = true;
  }

  hearth::Json j = {{"arch", o.one_arch},
                    {"format", o.one_format},
                    {"threads", o.threads},
                    {"weight_bytes", m.decoder->weight_bytes()},
                    {"load_seconds", load_s},
                    {"rss_loaded_kb", rss_loaded},
                    {"rss_end_kb", current_rss_kb()},
                    {"passes", o.passes},
                    {"prefill_tokens", prefill_tokens},
                    {"prefill_tok_s", median(prefill_rates)},
                    {"prefill_tok_s_each", prefill_rates},
                    {"decode_tokens", decode_tokens},
                    {"decode_tok_s", median(decode_rates)},
                    {"decode_tok_s_each", decode_rates},
                    {"aten_decode_tok_s", median(aten_decode_rates)},
                    {"decode_cpu_ms_per_token", median(decode_cpu_ms)},
                    // phases that waited for a descheduled worker (each starts a caller-only window)
                    {"pool_stalls", hearth::decode_worker_pool().stalls()}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

struct Row {
  std::string arch, format;
  hearth::Json result;
  long max_rss_kb = 0;
  bool ok = false;
};

// Parent: runs `self --one arch format ...` in a child, reads its JSON line and its peak RSS.
Row run_child(const std::string& self, const Options& o, const std::string& arch, const std::string& format) {
  Row row{arch, format, {}, 0, false};
  int fds[2];
  hearth::require(pipe(fds) == 0, ErrorCode::kIo, "pipe failed");
  std::vector<std::string> args = {self, "--one", arch, format, "--threads", std::to_string(o.threads),
                                         "--models", o.models.string(), "--decode-tokens", std::to_string(o.decode_tokens),
                                         "--prefill-tokens", std::to_string(o.prefill_tokens), "--passes",
                                         std::to_string(o.passes)};
  if (!o.aten_pass) args.push_back("--no-aten-pass");
  const pid_t pid = fork();
  hearth::require(pid >= 0, ErrorCode::kIo, "fork failed");
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(self.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(fds[0]);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  row.max_rss_kb = usage.ru_maxrss;  // KiB on Linux
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    try {
      row.result = hearth::parse_json(out.substr(out.rfind('{')), "child output");
      row.ok = true;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s %s: unreadable child output: %s\n", arch.c_str(), format.c_str(), e.what());
    }
  } else {
    std::fprintf(stderr, "%s %s: child failed (status %d)\n", arch.c_str(), format.c_str(), status);
  }
  return row;
}

// One row from a configuration's rounds: median speeds, the largest peak RSS.
Row merge_rounds(const std::vector<Row>& runs) {
  Row merged = runs.front();
  std::vector<double> decode, prefill;
  for (const Row& r : runs) {
    if (!r.ok) continue;
    if (!merged.ok) merged = r;
    decode.push_back(r.result["decode_tok_s"].get<double>());
    prefill.push_back(r.result["prefill_tok_s"].get<double>());
    merged.max_rss_kb = std::max(merged.max_rss_kb, r.max_rss_kb);
  }
  if (!merged.ok) return merged;
  merged.result["decode_tok_s"] = median(decode);
  merged.result["prefill_tok_s"] = median(prefill);
  merged.result["decode_tok_s_rounds"] = decode;
  return merged;
}

double load_average() {
  double l[3] = {0, 0, 0};
  return getloadavg(l, 3) > 0 ? l[0] : -1;
}

void print_table(const std::vector<Row>& rows, const Options& o) {
  std::printf("\n%d threads, decode %d tokens after an 8-token prompt, prefill %d tokens; medians of %d passes in each of "
              "%d rounds\n",
              o.threads, o.decode_tokens, o.prefill_tokens, o.passes, o.rounds);
  std::printf("%-13s %-10s %10s %10s %10s %10s %8s %9s %9s %8s %8s %9s\n", "shape", "format", "weights MB", "peak RSS MB",
              "loaded MB", "decode t/s", "cpu ms/t", "ATen t/s", "prefill", "dec/fp32", "RSS/fp32",
              "load s");
  std::map<std::string, const Row*> fp32;
  for (const auto& r : rows) {
    if (r.ok && r.format == "fp32") fp32[r.arch] = &r;
  }
  for (const auto& r : rows) {
    if (!r.ok) {
      std::printf("%-13s %-10s   (failed)\n", r.arch.c_str(), r.format.c_str());
      continue;
    }
    const double dec = r.result["decode_tok_s"].get<double>(), pre = r.result["prefill_tok_s"].get<double>();
    const auto base = fp32.find(r.arch);
    char vs_dec[16] = "-", vs_rss[16] = "-";
    if (base != fp32.end()) {
      std::snprintf(vs_dec, sizeof vs_dec, "%.2fx", dec / base->second->result["decode_tok_s"].get<double>());
      std::snprintf(vs_rss, sizeof vs_rss, "%.0f%%", 100.0 * r.max_rss_kb / base->second->max_rss_kb);
    }
    std::printf("%-13s %-10s %10.1f %10.1f %10.1f %10.1f %8.2f %9.1f %9.1f %8s %8s %9.1f\n", r.arch.c_str(),
                r.format.c_str(), r.result["weight_bytes"].get<double>() / 1e6, r.max_rss_kb / 1024.0,
                r.result["rss_loaded_kb"].get<double>() / 1024.0, dec, r.result["decode_cpu_ms_per_token"].get<double>(),
                r.result["aten_decode_tok_s"].get<double>(), pre, vs_dec, vs_rss,
                r.result["load_seconds"].get<double>());
  }
  std::printf("\nAgainst llama.cpp on the same weights in the same minute: bench/vs_llama_cpp.sh\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_args(argc, argv);
    if (!o.one_arch.empty()) {
      // Ends without static destructors: LibTorch's, across the ~290 libraries Debian's build
      // loads, page ~37 MB of library code back in (release_library_pages let it go) at exit, and
      // the child's peak RSS would be its teardown's rather than generation's.
      const int status = run_one(o);
      std::fflush(nullptr);
      std::_Exit(status);
    }
    const std::string self = fs::canonical("/proc/self/exe").string();
    std::printf("bench_decode: load average %.2f at start\n", load_average());
    std::vector<Row> rows;
    for (const auto& arch : o.archs) {
      ensure_model(o.models, arch);
      for (const auto& format : o.formats)
        if (is_mapped(format)) ensure_mapped_model(o.models, arch, format);
      // Rounds run every format once each, so a slow spell of the machine hits them alike.
      std::vector<std::vector<Row>> runs(o.formats.size());
      for (int round = 0; round < o.rounds; ++round) {
        for (size_t f = 0; f < o.formats.size(); ++f) {
          runs[f].push_back(run_child(self, o, arch, o.formats[f]));
          if (runs[f].back().ok)
            std::fprintf(stderr, "  %s %s: %s\n", arch.c_str(), o.formats[f].c_str(), runs[f].back().result.dump().c_str());
        }
      }
      for (auto& r : runs) rows.push_back(merge_rounds(r));
    }
    print_table(rows, o);
    std::printf("load average %.2f at end\n", load_average());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decode: %s\n", e.what());
    return 1;
  }
}
