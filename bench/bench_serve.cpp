// Serving figures on a qwen2.5-0.5b-shaped base (random weights, nf4) with rank-16 LoRA adapters
// on every projection, sealed in a real Hearth home: switching between two loaded adapters,
// loading one from the vault, decode with an adapter against without, and a mixed batch of 8
// requests with 8 different adapters against the same requests served one after another. Every
// figure is a ratio or a median measured in this process, so other load on the machine moves
// both sides alike; the load average is printed.
//
//   bench_serve [--models DIR] [--arch qwen2.5-0.5b] [--tokens 32] [--rounds 3] [--only load|switch|decode|batch]
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

#include "adapters/adapter.h"
#include "adapters/adapter_bundle.h"
#include "adapters/adapter_routing.h"
#include "adapters/adapter_set.h"
#include "core/preinit_environment.h"  // OpenMP wait policy and OpenBLAS kernels, as the hearth CLI runs
#include "core/rng.h"
#include "core/runtime.h"
#include "engine/engine.h"
#include "engine/server.h"
#include "inference/model_files.h"
#include "inference/quant/quant_kernels.h"
#include "storage/adapter_registry.h"
#include "storage/user_store.h"
#include "storage/vault.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace hearth;

namespace {

struct Options {
  fs::path models = "build/bench-models";
  std::string arch = "qwen2.5-0.5b";
  int tokens = 32;
  int rounds = 3;
  int threads = 2;
  std::string only;  // one figure: load, switch, decode or batch
};

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// This thread's CPU time in ms: what a step costs on an idle core, whatever else the machine runs
// (with --threads 1 all of the work is on this thread).
double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return 1e3 * double(t.tv_sec) + 1e-6 * double(t.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double load_average() {
  double l[3] = {0, 0, 0};
  return getloadavg(l, 3) > 0 ? l[0] : -1;
}

const std::string kKey(32, 'b');

// A rank-16 LoRA (every projection, or `targets`) with small random B (so it changes the
// output, mildly).
std::shared_ptr<Adapter> bench_adapter(const Decoder& d, uint64_t seed, const std::string& targets = "all") {
  AdapterConfig c;
  c.rank = 16;
  c.alpha = 32;
  c.seed = seed;
  c.targets = AdapterConfig::parse_targets(targets);
  auto a = Adapter::create(d, c);
  at::NoGradGuard no_grad;
  at::Generator gen = make_generator(seed + 77);
  for (auto& [name, t] : a->named_parameters())
    if (name.find("lora_B") != std::string::npos) t.normal_(0, 1e-3, gen);
  return a;
}

// Users u0..u7, each with a sealed rank-16 adapter "default" on every projection, and user "qv"
// with one on q_proj and v_proj only (PEFT's default targets).
void seed_home(engine::Engine& e, const fs::path& home, int users) {
  const LoadedModel& base = e.base();
  for (int i = -1; i < users; ++i) {
    const std::string user = i < 0 ? "qv" : "u" + std::to_string(i);
    bool exists = false;
    for (const auto& u : e.users()) exists = exists || u.name == user;
    if (exists) continue;
    e.ingest_texts(user, {{storage::IngestItem::Kind::kDocument, "note", "A note.\n"}});
    storage::Vault vault(home, privacy::MasterKeySource::from_raw_key(kKey));
    storage::AdapterRegistry registry(vault.db(), vault.keyring(), vault.home());
    auto adapter = bench_adapter(*base.decoder, uint64_t(i + 2), i < 0 ? "q,v" : "all");
    storage::AdapterRecord meta;
    meta.user_id = storage::UserStore(vault.db()).get(user).id;
    meta.name = "default";
    meta.method = "lora";
    meta.rank = 16;
    meta.targets = adapter->config().targets;
    meta.base_fingerprint = base.fingerprint;
    registry.add(meta, adapter_to_bundle(*adapter, "bench", base.fingerprint, Json::object()));
  }
}

engine::ServeRequest request_for(int user, int tokens) {
  engine::ServeRequest r;
  r.prompt = "The quick brown fox jumps over the lazy dog, number " + std::to_string(user);
  if (user >= 0) {
    r.user = "u" + std::to_string(user);
    r.adapter = "default";
  }
  r.options.max_tokens = tokens;
  r.options.stop_at_stop_tokens = false;
  r.options.sampling.temperature = 0;
  return r;
}

// Runs `requests` submitted together; returns generated tokens per second of wall time, and the
// decode-only rate of the requests (tokens after the first over decode seconds, summed).
struct Rates {
  double aggregate = 0;      // generated tokens per wall second
  double decode = 0;         // decode tokens per decode second (wall)
  double cpu_ms_per_token = 0;  // this thread's CPU time per generated token
};

Rates serve_together(engine::Server& server, const std::vector<engine::ServeRequest>& requests) {
  int64_t tokens = 0;
  double decode_seconds = 0;
  int64_t decode_tokens = 0;
  for (const auto& r : requests) {
    engine::ServeEvents ev;
    ev.on_done = [&](const GenerationResult& g, const std::optional<engine::TttReport>&) {
      tokens += int64_t(g.tokens.size());
      decode_tokens += std::max<int64_t>(0, int64_t(g.tokens.size()) - 1);
      decode_seconds = std::max(decode_seconds, g.decode_seconds);
    };
    ev.on_error = [](const std::string& m) { std::fprintf(stderr, "request failed: %s\n", m.c_str()); };
    server.submit(r, ev);
  }
  const auto t0 = Clock::now();
  const double c0 = thread_cpu_ms();
  server.run_until_idle();
  Rates out;
  out.cpu_ms_per_token = (thread_cpu_ms() - c0) / double(std::max<int64_t>(1, tokens));
  out.aggregate = double(tokens) / (ms_since(t0) / 1000.0);
  out.decode = decode_seconds > 0 ? double(decode_tokens) / decode_seconds : 0;
  return out;
}

// Loading a sealed adapter: decrypt, parse, check against the base, build the layers.
void bench_load(engine::Engine& e, const fs::path& home) {
  for (const char* user : {"qv", "u0"}) {
    std::vector<double> loads, cpu;
    size_t bytes = 0;
    for (int i = 0; i < 21; ++i) {
      const auto t0 = Clock::now();
      const double c0 = thread_cpu_ms();
      const std::string key = e.load_adapter(user, "default");
      loads.push_back(ms_since(t0));
      cpu.push_back(thread_cpu_ms() - c0);
      bytes = 0;
      for (const at::Tensor& p : e.loaded_adapter(key)->parameters()) bytes += p.nbytes();
      e.unload_adapter(key);
    }
    std::printf("load a sealed rank-16 adapter (%s, %.1f MB) from the vault (Engine::load_adapter): %.2f ms wall, "
                "%.2f ms CPU of this thread (medians of %zu)\n",
                std::string(user) == "qv" ? "q_proj + v_proj" : "all 7 projections", bytes / 1e6, median(loads), median(cpu),
                loads.size());
  }
  for (const char* user : {"qv", "u0"}) {
    // Of which: decrypting the sealed file.
    storage::Vault vault(home, privacy::MasterKeySource::from_raw_key(kKey));
    storage::AdapterRegistry registry(vault.db(), vault.keyring(), vault.home());
    const auto rec = registry.latest(storage::UserStore(vault.db()).get(user).id, "default");
    std::vector<double> opens, cpu;
    for (int i = 0; i < 21; ++i) {
      const auto t0 = Clock::now();
      const double c0 = thread_cpu_ms();
      const std::string bytes = registry.open_file(*rec);
      opens.push_back(ms_since(t0));
      cpu.push_back(thread_cpu_ms() - c0);
    }
    std::printf("  of which reading, decrypting and checking the version of the %s sealed file: %.2f ms wall, %.2f ms CPU\n",
                user, median(opens), median(cpu));
  }
}

// Switching: the adapter set's pointer swaps, and the server's routing of a batch.
void bench_switch(engine::Engine& e) {
  AdapterSet set(std::make_shared<Decoder>(*e.base().decoder));
  set.add("a", e.loaded_adapter(e.load_adapter("u0", "default")));
  set.add("b", e.loaded_adapter(e.load_adapter("u1", "default")));
  std::vector<double> switches;
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = Clock::now();
    set.activate(i % 2 ? "b" : "a");
    switches.push_back(ms_since(t0));
  }
  auto decoder = std::make_shared<Decoder>(*e.base().decoder);
  AdapterRouter router(decoder);
  auto a = router.prepare(set.get("a")), b = router.prepare(set.get("b"));
  std::vector<double> routes;
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = Clock::now();
    router.route({{0, 1, i % 2 ? b : a, 1.0}});
    routes.push_back(ms_since(t0));
  }
  std::printf("switch between two loaded rank-16 adapters: AdapterSet::activate %.4f ms, AdapterRouter::route %.4f ms "
              "(medians of 1000)\n",
              median(switches), median(routes));
}

// Decode with one adapter against the bare base, alternating, medians of the rounds.
void bench_decode(engine::Server& server, const Options& o) {
  std::vector<double> bare, adapted, bare_cpu, adapted_cpu;
  for (int r = 0; r < o.rounds; ++r) {
    Rates b = serve_together(server, {request_for(-1, o.tokens)});
    Rates a = serve_together(server, {request_for(0, o.tokens)});
    bare.push_back(b.decode);
    adapted.push_back(a.decode);
    bare_cpu.push_back(b.cpu_ms_per_token);
    adapted_cpu.push_back(a.cpu_ms_per_token);
  }
  std::printf("decode, one request: bare base %.2f tok/s, with a rank-16 adapter %.2f tok/s: %.1f%%; CPU per token "
              "%.1f / %.1f ms: %.1f%% (medians of %d)\n",
              median(bare), median(adapted), 100.0 * median(adapted) / median(bare), median(bare_cpu), median(adapted_cpu),
              100.0 * median(bare_cpu) / median(adapted_cpu), o.rounds);
}

// 8 requests with 8 adapters: one after another, then all in one batch.
void bench_batch(engine::Server& server, const Options& o) {
  std::vector<double> sequential, batched, sequential_cpu, batched_cpu;
  for (int r = 0; r < o.rounds; ++r) {
    int64_t tokens = 0;
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_ms();
    for (int u = 0; u < 8; ++u) {
      serve_together(server, {request_for(u, o.tokens)});
      tokens += o.tokens;
    }
    sequential.push_back(double(tokens) / (ms_since(t0) / 1000.0));
    sequential_cpu.push_back((thread_cpu_ms() - c0) / double(tokens));
    std::vector<engine::ServeRequest> all;
    for (int u = 0; u < 8; ++u) all.push_back(request_for(u, o.tokens));
    const Rates b = serve_together(server, all);
    batched.push_back(b.aggregate);
    batched_cpu.push_back(b.cpu_ms_per_token);
  }
  std::printf("8 requests, 8 different adapters, %d tokens each: one after another %.2f tok/s, one batch %.2f tok/s: "
              "%.2fx; CPU per token %.1f / %.1f ms: %.2fx (medians of %d)\n",
              o.tokens, median(sequential), median(batched), median(batched) / median(sequential), median(sequential_cpu),
              median(batched_cpu), median(sequential_cpu) / median(batched_cpu), o.rounds);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--models") o.models = value();
    else if (a == "--arch") o.arch = value();
    else if (a == "--tokens") o.tokens = std::stoi(value());
    else if (a == "--rounds") o.rounds = std::stoi(value());
    else if (a == "--threads") o.threads = std::stoi(value());
    else if (a == "--only") o.only = value();
    else {
      std::fprintf(stderr, "usage: bench_serve [--models DIR] [--arch A] [--tokens N] [--rounds N] [--threads N] [--only load|switch|decode|batch]\n");
      return 2;
    }
  }
  if (!o.only.empty() && o.only != "load" && o.only != "switch" && o.only != "decode" && o.only != "batch") {
    std::fprintf(stderr, "error: --only must be load, switch, decode or batch, not \"%s\"\n", o.only.c_str());
    return 2;
  }
  init_runtime(o.threads);
  const fs::path model = o.models / o.arch;
  if (!fs::exists(model / "config.json")) {
    std::fprintf(stderr, "creating %s (once)\n", model.string().c_str());
    fs::create_directories(o.models);
    init_random_model(o.arch, 1, model);
  }
  const fs::path home = o.models / (o.arch + "-serve-home");
  engine::EngineOptions eo;
  eo.home = home;
  eo.key = privacy::MasterKeySource::from_raw_key(kKey);
  engine::Engine e(eo);
  engine::BaseModelSpec spec;
  spec.path = model.string();
  spec.quant = "nf4";
  e.load_base(spec);
  seed_home(e, home, 8);
  std::printf("%s nf4, kernels %s, %d threads, load average %.1f at start\n", o.arch.c_str(), active_kernels().name,
              at::get_num_threads(), load_average());

  const auto wanted = [&](const char* part) { return o.only.empty() || o.only == part; };
  if (wanted("load")) bench_load(e, home);
  if (wanted("switch")) bench_switch(e);
  if (!wanted("decode") && !wanted("batch")) return 0;
  engine::ServerOptions so;
  so.max_batch = 8;
  engine::Server server(e, so);
  for (int i = 0; i < 8; ++i) server.load_adapter("u" + std::to_string(i), "default");
  serve_together(server, {request_for(-1, 4), request_for(0, 4)});  // warm-up

  if (wanted("decode")) bench_decode(server, o);
  if (wanted("batch")) bench_batch(server, o);
  std::printf("load average %.1f at the end\n", load_average());
  return 0;
}
