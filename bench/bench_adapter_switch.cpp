// Per-request adapter switching and PEFT-file loading on a smollm2-135m-shaped base (nf4
// projections, 30 layers x 7 projections) with LoRA r=16 adapters on every projection.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "adapters/adapter_set.h"
#include "adapters/peft_files.h"
#include "core/rng.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main() {
  using namespace hearth;
  const fs::path base_dir = fs::temp_directory_path() / "hearth_bench_smollm2-135m";
  if (!fs::exists(base_dir / "config.json")) init_random_model("smollm2-135m", 1, base_dir);
  LoadOptions options;
  options.quant = QuantFormat::kNF4;
  LoadedModel m = load_model(base_dir, options);

  AdapterConfig config;
  config.rank = 16;
  config.alpha = 32;
  AdapterSet set(m.decoder);
  for (int i = 0; i < 2; ++i) {
    config.seed = static_cast<uint64_t>(i);
    auto adapter = Adapter::create(*m.decoder, config);
    at::NoGradGuard no_grad;
    at::Generator gen = make_generator(100 + i);
    for (auto& [name, t] : adapter->named_parameters())
      if (name.find("lora_B") != std::string::npos) t.normal_(0, 0.01, gen);
    set.add(i == 0 ? "a" : "b", adapter);
  }
  const auto first = set.get("a");
  std::printf("adapter: LoRA r=16 on %zu projections, %.2fM parameters\n", first->modules().size(),
              first->parameter_count() / 1e6);

  const int kSwitches = 2000;
  auto t0 = Clock::now();
  for (int i = 0; i < kSwitches; ++i) set.activate(i % 2 ? "b" : "a");
  std::printf("switch (AdapterSet::activate): %.2f us per switch (mean of %d)\n", ms_since(t0) * 1000 / kSwitches,
              kSwitches);

  const fs::path adapter_dir = fs::temp_directory_path() / "hearth_bench_adapter_r16";
  t0 = Clock::now();
  save_peft_adapter(adapter_dir, *first, "smollm2-135m", m.fingerprint, Json::object());
  std::printf("save PEFT folder: %.1f ms (%.2f MB)\n", ms_since(t0),
              fs::file_size(adapter_dir / "adapter_model.safetensors") / 1e6);
  std::vector<double> loads;
  for (int i = 0; i < 7; ++i) {
    t0 = Clock::now();
    auto loaded = load_peft_adapter(adapter_dir, *m.decoder, m.fingerprint);
    loads.push_back(ms_since(t0));
  }
  std::printf("load PEFT folder (checked): %.1f ms median of %zu\n", median(loads), loads.size());

  // One decode step with and without the adapter, for scale.
  ForwardInput in;
  in.tokens = at::full({1, 1}, 42, at::kLong);
  at::NoGradGuard no_grad;
  for (const char* name : {"", "a"}) {
    set.activate(name);
    std::vector<double> steps;
    for (int i = 0; i < 9; ++i) {
      t0 = Clock::now();
      m.decoder->forward(in);
      steps.push_back(ms_since(t0));
    }
    std::printf("one-token forward, %s: %.2f ms median\n", *name ? "with adapter" : "bare base", median(steps));
  }
  return 0;
}
