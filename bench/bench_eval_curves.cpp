// Tabulates and plots the optimizer comparison of docs/optimizers.md ("Results") from finished
// `hearth train` runs: per optimizer the learning rate with the lowest final held-out perplexity,
// its curve, and the full fine-tuning runs' perplexity before and after.
//
//   bench_eval_curves --out DIR --runs RUN_DIR... [--finetune RUN_DIR...]
//
// Each RUN_DIR holds metrics.jsonl and training_summary.json (written by hearth train) and
// result.json (the last stdout line of hearth train --json); other paths are skipped. Writes DIR/results.md (also
// printed) and DIR/pretrain_heldout_ppl.svg.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "trainer/loss_curve_svg.h"

namespace fs = std::filesystem;
using hearth::Json;

namespace {

struct Run {
  fs::path dir;
  std::string optimizer;  // adamw | apollo | apollo-mini
  double lr = 0;
  Json result;                         // hearth train --json
  hearth::trainer::CurvePoints ppl;    // (step, held-out perplexity)
};

Run read_run(const fs::path& dir) {
  Run r;
  r.dir = dir;
  r.result = hearth::read_json_file(dir / "result.json");
  r.optimizer = r.result.at("optimizer").get<std::string>();
  r.lr = hearth::read_json_file(dir / "training_summary.json").at("config").at("lr").get<double>();
  std::ifstream metrics(dir / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const Json j = hearth::parse_json(line, (dir / "metrics.jsonl").string());
    if (j.contains("eval_loss")) r.ppl.emplace_back(j.at("step").get<double>(), std::exp(j.at("eval_loss").get<double>()));
  }
  return r;
}

double final_ppl(const Run& r) { return r.result.at("eval_ppl_after").get<double>(); }

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

const std::vector<std::string> kOrder = {"adamw", "apollo", "apollo-mini"};
const std::map<std::string, std::string> kLabel = {{"adamw", "AdamW"}, {"apollo", "APOLLO"}, {"apollo-mini", "APOLLO-Mini"}};
const std::map<std::string, std::string> kColor = {{"adamw", "#1f77b4"}, {"apollo", "#d62728"}, {"apollo-mini", "#2ca02c"}};

std::string pretrain_table(const std::vector<Run>& runs, std::vector<hearth::trainer::NamedCurve>& curves) {
  std::map<std::string, std::vector<const Run*>> by_optim;
  for (const Run& r : runs) by_optim[r.optimizer].push_back(&r);
  std::string s =
      "| optimizer | held-out ppl at each lr | best lr | final held-out ppl | vs AdamW | optimizer state bytes | tokens/s |\n"
      "|---|---|---:|---:|---:|---:|---:|\n";
  double adamw = 0;
  for (const std::string& o : kOrder) {
    auto it = by_optim.find(o);
    if (it == by_optim.end()) continue;
    std::vector<const Run*> sweep = it->second;
    std::sort(sweep.begin(), sweep.end(), [](const Run* a, const Run* b) { return a->lr < b->lr; });
    const Run* best = sweep.front();
    std::string cells;
    for (const Run* r : sweep) {
      cells += (cells.empty() ? "" : ", ") + fmt("%g", r->lr) + ": " + fmt("%.2f", final_ppl(*r));
      if (final_ppl(*r) < final_ppl(*best)) best = r;
    }
    if (o == "adamw") adamw = final_ppl(*best);
    const std::string vs = adamw > 0 ? fmt("%+.2f%%", (final_ppl(*best) / adamw - 1) * 100) : "-";
    s += "| " + kLabel.at(o) + " | " + cells + " | " + fmt("%g", best->lr) + " | " + fmt("%.2f", final_ppl(*best)) + " | " + vs +
         " | " + fmt("%.0f", best->result.at("optimizer_state_bytes").get<double>()) + " | " +
         fmt("%.0f", best->result.at("tokens_per_s").get<double>()) + " |\n";
    curves.push_back({kLabel.at(o) + " (lr " + fmt("%g", best->lr) + ")", kColor.at(o), best->ppl});
  }
  return s;
}

std::string finetune_table(const std::vector<Run>& runs) {
  std::string s =
      "| optimizer | lr | held-out ppl before | after | change | optimizer state bytes |\n"
      "|---|---:|---:|---:|---:|---:|\n";
  for (const std::string& o : kOrder) {
    for (const Run& r : runs) {
      if (r.optimizer != o) continue;
      const double before = r.result.at("eval_ppl_before").get<double>(), after = final_ppl(r);
      s += "| " + kLabel.at(o) + " | " + fmt("%g", r.lr) + " | " + fmt("%.2f", before) + " | " + fmt("%.2f", after) + " | " +
           fmt("%+.1f%%", (after / before - 1) * 100) + " | " +
           fmt("%.0f", r.result.at("optimizer_state_bytes").get<double>()) + " |\n";
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path out;
    std::vector<Run> pretrain, finetune;
    std::vector<Run>* into = nullptr;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--out" && i + 1 < argc) {
        out = argv[++i];
      } else if (a == "--runs") {
        into = &pretrain;
      } else if (a == "--finetune") {
        into = &finetune;
      } else if (into != nullptr) {
        // Skips what a shell glob also matches (run logs) and runs that have not finished.
        if (fs::is_directory(a) && fs::exists(fs::path(a) / "result.json")) into->push_back(read_run(a));
      } else {
        std::fprintf(stderr, "usage: bench_eval_curves --out DIR --runs RUN_DIR... [--finetune RUN_DIR...]\n");
        return 2;
      }
    }
    hearth::require(!out.empty(), hearth::ErrorCode::kInvalidArgument, "--out DIR is required");
    std::vector<hearth::trainer::NamedCurve> curves;
    std::string md = "Pretraining from scratch, held-out perplexity (final evaluation):\n\n" + pretrain_table(pretrain, curves);
    if (!finetune.empty()) md += "\nFull fine-tuning of stories260K:\n\n" + finetune_table(finetune);
    hearth::write_file_atomic(out / "results.md", md);
    hearth::write_file_atomic(out / "pretrain_heldout_ppl.svg",
                              hearth::trainer::curves_svg(curves, "Austen pretraining: held-out perplexity (best lr each)",
                                                          "held-out perplexity"));
    std::printf("%s\nwrote %s and %s\n", md.c_str(), (out / "results.md").c_str(), (out / "pretrain_heldout_ppl.svg").c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_eval_curves: %s\n", e.what());
    return 1;
  }
}
