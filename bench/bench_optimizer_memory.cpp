// Optimizer-state memory of AdamW, APOLLO (rank = 1/4 of each matrix's smaller side) and
// APOLLO-Mini on the SmolLM2-135M shapes, for full fine-tuning and for LoRA r=16; plus the
// step time of each relative to AdamW. Real tensors, real steps, state_bytes() as measured.
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "optim/adamw.h"
#include "optim/apollo.h"

using namespace hearth;
using namespace hearth::optim;

namespace {

// SmolLM2-135M: hidden 576, intermediate 1536, 30 layers, 9 heads / 3 kv heads of 64, vocab 49152.
constexpr int64_t kHidden = 576, kInter = 1536, kLayers = 30, kKv = 3 * 64, kVocab = 49152;

struct Linear {
  int64_t out, in;
};
const std::vector<Linear> kProjections = {{kHidden, kHidden}, {kKv, kHidden},    {kKv, kHidden},   {kHidden, kHidden},
                                          {kInter, kHidden},  {kInter, kHidden}, {kHidden, kInter}};

// Uniform rather than Gaussian draws: the figures do not depend on the values, and 270M
// Gaussian draws would take a good part of the time budget.
at::Tensor trainable(std::vector<int64_t> shape, at::Generator& gen) {
  at::Tensor p = at::empty(shape).uniform_(-0.02, 0.02, gen).set_requires_grad(true);
  p.mutable_grad() = at::empty(shape).uniform_(-1.0, 1.0, gen);
  return p;
}

// Parameter tensors of one workload, grouped by the APOLLO rank their matrices get.
struct Workload {
  std::string name;
  std::map<int64_t, std::vector<at::Tensor>> matrices_by_rank;  // rank 1/4 of the smaller side
  std::vector<at::Tensor> vectors;
  int64_t numel = 0;

  void add(std::vector<int64_t> shape, at::Generator& gen) {
    at::Tensor p = trainable(shape, gen);
    numel += p.numel();
    if (shape.size() == 2) {
      matrices_by_rank[std::min(shape[0], shape[1]) / 4].push_back(p);
    } else {
      vectors.push_back(p);
    }
  }
  std::vector<ParamGroup> groups(bool mini) const {
    std::vector<ParamGroup> out;
    for (const auto& [rank, params] : matrices_by_rank) {
      ParamGroup g;
      g.name = "rank " + std::to_string(rank);
      g.params = params;
      g.rank = mini ? 1 : static_cast<int>(rank);
      out.push_back(g);
    }
    if (!vectors.empty()) {
      ParamGroup g;
      g.name = "vectors";
      g.params = vectors;
      out.push_back(g);
    }
    return out;
  }
};

Workload full_finetune(at::Generator& gen) {
  Workload w{"full fine-tuning"};
  w.add({kVocab, kHidden}, gen);  // tied embedding / LM head
  for (int64_t l = 0; l < kLayers; ++l) {
    for (const auto& p : kProjections) w.add({p.out, p.in}, gen);
    w.add({kHidden}, gen);
    w.add({kHidden}, gen);
  }
  w.add({kHidden}, gen);
  return w;
}

Workload lora16(at::Generator& gen) {
  Workload w{"LoRA r=16, 7 projections"};
  for (int64_t l = 0; l < kLayers; ++l) {
    for (const auto& p : kProjections) {
      w.add({16, p.in}, gen);   // A
      w.add({p.out, 16}, gen);  // B
    }
  }
  return w;
}

struct Result {
  std::string name;
  size_t bytes = 0;
  double step_seconds = 0;  // the second step (the first also allocates the state)
};

Result measure(const std::string& name, const std::function<std::unique_ptr<Optimizer>()>& make) {
  auto opt = make();
  opt->set_lr(1e-6);  // keep the weights sane; the figures do not depend on it
  opt->step();
  const auto t0 = std::chrono::steady_clock::now();
  opt->step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {name, opt->state_bytes(), seconds};
}

void report(const Workload& w, bool timed, double apollo_target, double mini_target) {
  std::vector<Result> rows;
  rows.push_back(measure("AdamW", [&] { return std::make_unique<AdamW>(w.groups(false), AdamSettings{}); }));
  rows.push_back(measure("APOLLO (rank min/4)", [&] { return std::make_unique<Apollo>(w.groups(false), ApolloSettings{}); }));
  rows.push_back(measure("APOLLO-Mini", [&] { return std::make_unique<Apollo>(w.groups(true), apollo_mini_settings()); }));
  std::printf("\n%s: %lld trainable parameters (%.1f MiB fp32)\n", w.name.c_str(), static_cast<long long>(w.numel),
              w.numel * 4.0 / (1 << 20));
  std::printf("  %-22s %14s %10s %10s%s\n", "optimizer", "state bytes", "MiB", "vs AdamW", timed ? "   step s   step vs AdamW" : "");
  for (const auto& r : rows) {
    std::printf("  %-22s %14zu %10.2f %9.2f%%", r.name.c_str(), r.bytes, r.bytes / double(1 << 20), 100.0 * r.bytes / rows[0].bytes);
    if (timed) std::printf("   %6.3f   %6.2fx", r.step_seconds, r.step_seconds / rows[0].step_seconds);
    std::printf("\n");
  }
  if (apollo_target <= 0) return;  // the issue sets targets for full fine-tuning only
  std::printf("  target: APOLLO <= %.1f%% of AdamW: %s; APOLLO-Mini <= %.1f%%: %s\n", 100 * apollo_target,
              rows[1].bytes <= apollo_target * rows[0].bytes ? "met" : "NOT MET", 100 * mini_target,
              rows[2].bytes <= mini_target * rows[0].bytes ? "met" : "NOT MET");
}

}  // namespace

int main() {
  set_num_threads(0);
  at::Generator gen = make_generator(2024);
  {
    Workload full = full_finetune(gen);
    report(full, /*timed=*/true, 1.0 / 3, 0.02);
  }
  Workload lora = lora16(gen);
  report(lora, /*timed=*/false, 0, 0);
  return 0;
}
