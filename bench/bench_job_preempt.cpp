// How fast a background job lets go when the OS asks: on the qwen2.5-0.5b shape (random weights,
// nf4 base from a quantized folder), a job's slice is preempted through its cancel flag at a
// random moment of training, and the time from setting the flag to run_slice returning (with
// the checkpoint sealed, fsynced and committed) is measured. Prints median and max of N trials,
// and the part of it that is the durable checkpoint write.
//
//   bench_job_preempt [--trials 20] [--seq-len 128] [--batch 2] [--arch qwen2.5-0.5b]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "core/atomic_file.h"
#include "core/runtime.h"
#include "engine/engine.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/quant/quant_kernels.h"
#include "inference/quantized_model_files.h"
#include "core/assets.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Options {
  int trials = 20;
  int64_t seq_len = 128, batch = 2;
  std::string arch = "qwen2.5-0.5b";
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--trials") o.trials = std::stoi(value);
    else if (flag == "--seq-len") o.seq_len = std::stoll(value);
    else if (flag == "--batch") o.batch = std::stoll(value);
    else if (flag == "--arch") o.arch = value;
  }
  return o;
}

// A cached nf4 folder of the architecture's real shapes with seeded random weights.
fs::path nf4_model(const std::string& arch) {
  const fs::path root = fs::temp_directory_path() / "hearth_bench_models";
  const fs::path dense = root / arch, packed = root / (arch + "-nf4");
  if (!fs::exists(dense / "config.json")) {
    fs::create_directories(root);
    StagedDirectory staged(dense);
    init_random_model(arch, 1, staged.path());
    staged.commit();
  }
  if (!fs::exists(packed / "config.json")) {
    ModelSource source = open_model_source(dense);
    QuantizationInfo info;
    info.source_fingerprint = source.fingerprint();
    write_quantized_model(packed, source.config, *source.tensors, info, source.tokenizer_files);
  }
  return packed;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int run(const Options& o) {
  init_runtime(2);
  const fs::path model = nf4_model(o.arch);
  const fs::path home = fs::temp_directory_path() / "hearth_bench_preempt_home";
  fs::remove_all(home);
  engine::EngineOptions eo;
  eo.home = home;
  eo.key = privacy::MasterKeySource::from_raw_key(std::string(32, 'b'));
  engine::Engine e(eo);
  engine::BaseModelSpec base;
  base.path = model.string();
  e.load_base(base);
  std::string text = read_file(asset_path("data/jane_austen/emma.txt"));
  text.resize(200000);
  e.ingest_texts("ann", {{storage::IngestItem::Kind::kDocument, "emma", text}});
  engine::JobSpec spec;
  spec.user = "ann";
  spec.training.rank = 16;
  spec.training.steps = 1000;
  spec.training.seq_len = o.seq_len;
  spec.training.batch = o.batch;
  spec.training.eval_fraction = 0;  // no held-out pass: every trial is stopped while training
  const int64_t job = e.submit_job(spec);

  std::printf("bench_job_preempt: %s shape, nf4 quantized folder, LoRA r16 (all projections), APOLLO-Mini,\n"
              "seq %lld x batch %lld, kernels %s, 2 threads; %d trials, each stopped at a random moment 3-10 s into\n"
              "its slice through the cancel flag\n\n",
              o.arch.c_str(), static_cast<long long>(o.seq_len), static_cast<long long>(o.batch),
              kernel_isa_name(best_available_isa()), o.trials);
  std::printf("%6s %10s %12s %18s %14s\n", "trial", "step", "latency ms", "checkpoint write ms", "slice s");
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> moment_ms(3000, 10000);
  std::vector<double> latencies, writes;
  for (int t = 0; t < o.trials; ++t) {
    std::atomic<bool> cancel{false};
    Clock::time_point requested;
    engine::SliceBudget budget;
    budget.cancelled = [&cancel] { return cancel.load(); };
    std::thread os([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(moment_ms(rng)));
      requested = Clock::now();
      cancel = true;
    });
    const engine::SliceResult r = e.run_slice(job, budget);
    const Clock::time_point returned = Clock::now();
    os.join();
    const double latency = std::chrono::duration<double, std::milli>(returned - requested).count();
    latencies.push_back(latency);
    writes.push_back(r.stop_latency_seconds * 1000);
    std::printf("%6d %10lld %12.0f %18.0f %14.1f\n", t + 1, static_cast<long long>(r.steps_done), latency,
                r.stop_latency_seconds * 1000, r.seconds);
  }
  std::printf("\npreemption latency (flag set -> run_slice returned, checkpoint durable): median %.0f ms, max %.0f ms\n",
              median(latencies), *std::max_element(latencies.begin(), latencies.end()));
  std::printf("of which stop noticed -> checkpoint durable: median %.0f ms, max %.0f ms\n", median(writes),
              *std::max_element(writes.begin(), writes.end()));
  fs::remove_all(home);
  return 0;
}

}  // namespace
}  // namespace hearth

int main(int argc, char** argv) {
  try {
    return hearth::run(hearth::parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
