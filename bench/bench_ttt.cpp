// Test-time training on real text: held-out passages from the six Austen novels (the last 10% of
// each novel's lines, which `hearth train`'s default split never trains on), each 1,024 tokens of
// context followed by 256 target tokens. The target's perplexity (every target token predicted
// from the 255 tokens before it) with and without the hook, on stories260K and on a stories260K
// adapter already trained on Austen (a PEFT folder, --adapter), and the hook's time per 1,000
// context tokens. --tune first sweeps steps and learning rates on other passages of the same
// tails (the defaults are chosen there, never on the reported passages).
//
//   bench_ttt [--adapter runs/austen-qlora-r8/adapter] [--quant nf4] [--passages 20] [--tune]
//             [--steps K] [--lr X] [--user-lr-factor F] [--rank R] [--chunk N]
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/adapter_set.h"
#include "adapters/peft_files.h"
#include "core/preinit_environment.h"  // OpenMP wait policy and OpenBLAS kernels, as the hearth CLI runs
#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/runtime.h"
#include "engine/test_time_training.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/quant/quant_kernels.h"

namespace fs = std::filesystem;
using namespace hearth;

namespace {

constexpr int64_t kContext = 1024, kTarget = 256, kPassage = kContext + kTarget;

struct Options {
  fs::path model;
  fs::path adapter;
  std::string quant = "nf4";
  int passages = 20;
  bool tune = false;
  engine::TttSettings ttt;
};

// The last 10% of each novel's lines as the perplexity protocol tokenizes text (each non-empty
// line with BOS), cut into consecutive passages of 1,280 tokens. Passage p of every novel in
// turn: [novel 0 passage 0, novel 1 passage 0, ..., novel 0 passage 1, ...].
std::vector<std::vector<std::vector<int32_t>>> passages_by_novel(const Tokenizer& tok) {
  std::vector<std::vector<std::vector<int32_t>>> out;
  for (const char* novel : {"emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"}) {
    std::istringstream in(read_file(asset_path(std::string("data/jane_austen/") + novel + ".txt")));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::string tail;
    for (size_t i = lines.size() - lines.size() / 10; i < lines.size(); ++i) tail += lines[i] + "\n";
    const std::vector<int32_t> stream = perplexity_token_stream(tok, tail);
    std::vector<std::vector<int32_t>> ps;
    for (size_t s = 0; s + kPassage <= stream.size(); s += kPassage) ps.emplace_back(stream.begin() + s, stream.begin() + s + kPassage);
    out.push_back(std::move(ps));
  }
  return out;
}

// `count` passages, round-robin over the novels, starting at each novel's passage `first`.
std::vector<std::vector<int32_t>> pick(const std::vector<std::vector<std::vector<int32_t>>>& by_novel, int first, int count) {
  std::vector<std::vector<int32_t>> out;
  for (int p = first; int(out.size()) < count; ++p) {
    bool any = false;
    for (const auto& novel : by_novel) {
      if (p < int(novel.size()) && int(out.size()) < count) {
        out.push_back(novel[p]);
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

// Mean NLL of the 256 target tokens, each predicted from the 255 tokens before it (the window
// holds 511 inputs: context tokens 768..1023 and the target's first 255).
double target_nll(const Decoder& d, const std::vector<int32_t>& passage) {
  at::InferenceMode inference;
  const std::vector<int64_t> seq(passage.begin() + (kContext - 256), passage.end());
  const at::Tensor tokens = at::tensor(seq, at::kLong);
  const int64_t n = tokens.size(0);
  const at::Tensor hidden = d.hidden_states({tokens.narrow(0, 0, n - 1).unsqueeze(0)}).squeeze(0);
  const at::Tensor scored = hidden.narrow(0, n - 1 - kTarget, kTarget);
  return chunked_nll(d, scored, tokens.narrow(0, n - kTarget, kTarget)).item<double>() / double(kTarget);
}

struct Outcome {
  double ppl_without = 0, ppl_with = 0;  // geometric means over passages (exp of mean NLL)
  double mean_change = 0;                // mean over passages of (ppl_with / ppl_without - 1)
  double seconds_per_1k = 0;             // hook wall time per 1,000 context tokens
  double cpu_seconds_per_1k = 0;         // and its CPU time (what it costs on an idle core)
};

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

Outcome run(const Decoder& base, const std::shared_ptr<Adapter>& init, const std::vector<std::vector<int32_t>>& passages,
            const engine::TttSettings& s) {
  Decoder plain(base);
  if (init) attach_adapter(plain, init); else detach_adapters(plain);
  double nll_without = 0, nll_with = 0, change = 0, seconds = 0, cpu = 0;
  for (const auto& p : passages) {
    const std::vector<int32_t> context(p.begin(), p.begin() + kContext);
    const double before = target_nll(plain, p);
    engine::TttReport report;
    const double cpu0 = cpu_seconds();
    auto trained = engine::train_on_context(base, context, s, init, &report);
    cpu += cpu_seconds() - cpu0;
    Decoder adapted(base);
    attach_adapter(adapted, trained);
    const double after = target_nll(adapted, p);
    nll_without += before;
    nll_with += after;
    change += std::exp(after - before) - 1;
    seconds += report.seconds;
  }
  const double n = double(passages.size());
  const double per_1k = n * (kContext / 1000.0);
  return {std::exp(nll_without / n), std::exp(nll_with / n), change / n, seconds / per_1k, cpu / per_1k};
}

// over_user: the runs over the Austen adapter, whose delta trains at lr * user_lr_factor.
void print(const char* what, const engine::TttSettings& s, bool over_user, const Outcome& o) {
  std::printf("%-16s steps %3lld lr %.0e x %.2f rank %2lld chunk %3lld | ppl %7.3f -> %7.3f | mean change %+6.2f%% | per "
              "1k context tokens %.2f s wall, %.2f s CPU\n",
              what, (long long)s.steps, s.lr, over_user ? s.user_lr_factor : 1.0, (long long)s.rank,
              (long long)s.chunk_tokens, o.ppl_without, o.ppl_with, 100 * o.mean_change, o.seconds_per_1k,
              o.cpu_seconds_per_1k);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.model = asset_path("models/stories260K");
  o.ttt.steps = 8;
  o.ttt.max_seconds = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--model") o.model = value();
    else if (a == "--adapter") o.adapter = value();
    else if (a == "--quant") o.quant = value();
    else if (a == "--passages") o.passages = std::stoi(value());
    else if (a == "--tune") o.tune = true;
    else if (a == "--steps") o.ttt.steps = std::stoll(value());
    else if (a == "--lr") o.ttt.lr = std::stod(value());
    else if (a == "--user-lr-factor") o.ttt.user_lr_factor = std::stod(value());
    else if (a == "--rank") o.ttt.rank = std::stoll(value());
    else if (a == "--chunk") o.ttt.chunk_tokens = std::stoll(value());
    else {
      std::fprintf(stderr, "unknown option %s (see the header of bench/bench_ttt.cpp)\n", a.c_str());
      return 2;
    }
  }
  init_runtime(1);  // one thread: a tiny model gains nothing from two, and the machine is shared
  LoadOptions lo;
  if (!o.quant.empty()) lo.quant = parse_quant_format(o.quant);
  LoadedModel m = load_model(o.model, lo);
  std::shared_ptr<Adapter> austen;
  if (!o.adapter.empty()) austen = load_peft_adapter(o.adapter, *m.decoder, m.fingerprint);
  const auto by_novel = passages_by_novel(*m.tokenizer);
  const auto reported = pick(by_novel, 0, o.passages);
  std::printf("stories260K %s, kernels %s, 1 thread, %zu held-out passages (1,024 context + 256 target tokens)%s\n",
              o.quant.c_str(), active_kernels().name, reported.size(), o.adapter.empty() ? "" : ", with the Austen adapter too");
  if (o.tune) {
    const auto tuning = pick(by_novel, 4, 12);  // later passages of the same tails, never reported
    std::printf("tuning on %zu other passages:\n", tuning.size());
    for (int64_t steps : {8, 16, 32}) {
      for (double lr : {1e-3, 3e-3, 1e-2}) {
        engine::TttSettings s = o.ttt;
        s.steps = steps;
        s.lr = lr;
        print("  base", s, false, run(*m.decoder, nullptr, tuning, s));
      }
    }
    // Over the adapter: the delta's learning rate as a fraction of the base's (--lr).
    for (int64_t steps : {8, 16}) {
      for (double factor : {0.03, 0.1, 0.3}) {
        engine::TttSettings s = o.ttt;
        s.steps = steps;
        s.user_lr_factor = factor;
        if (austen) print("  austen adapter", s, true, run(*m.decoder, austen, tuning, s));
      }
    }
  }
  print("base", o.ttt, false, run(*m.decoder, nullptr, reported, o.ttt));
  if (austen) print("austen adapter", o.ttt, true, run(*m.decoder, austen, reported, o.ttt));
  return 0;
}
