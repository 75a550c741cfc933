// Training speed and memory of QLoRA on a SmolLM2-135M-shaped model (nf4 base, LoRA r=16 on
// every projection, seq 256, batch 4, 2 threads), with and without gradient checkpointing.
// Each configuration runs in a child process (this binary re-executed), so its peak RSS is its own.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "adapters/adapter.h"
#include "core/preinit_environment.h"  // OpenMP wait policy and OpenBLAS kernels, as the hearth CLI runs
#include "core/atomic_file.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "inference/quantized_model_files.h"
#include "trainer/trainer.h"

using namespace hearth;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSeq = 256, kBatch = 4, kSteps = 3;
constexpr int kThreads = 2;

fs::path model_dir() { return fs::temp_directory_path() / "hearth_bench_train" / "smollm2-135m"; }
// The same model quantized once to nf4 (int8 embeddings): children map its packed weights, so
// their peak RSS is training's, not that of quantizing a bf16 file at load.
fs::path nf4_dir() { return fs::temp_directory_path() / "hearth_bench_train" / "smollm2-135m-nf4"; }

// Rows of seeded random token ids packed as one document per row.
trainer::PackedRows random_rows(int64_t rows, int64_t vocab) {
  at::Generator gen = make_generator(1);
  trainer::PackedRows p;
  p.tokens = at::randint(0, vocab, {rows, kSeq}, gen, at::kLong);
  p.targets = at::randint(0, vocab, {rows, kSeq}, gen, at::kLong);
  p.weights = at::ones({rows, kSeq});
  p.positions = at::arange(kSeq, at::kLong).expand({rows, kSeq}).contiguous();
  p.segments = at::zeros({rows, kSeq}, at::kLong);
  return p;
}

// The child: one training run, printing one JSON line.
int child(bool checkpoint) {
  init_runtime(kThreads);
  LoadedModel m = load_model(nf4_dir(), LoadOptions{});
  AdapterConfig a;
  a.rank = 16;
  a.alpha = 32;
  trainer::Trainable t = trainer::Trainable::adapter(*m.decoder, a);
  trainer::TrainConfig cfg;
  cfg.steps = kSteps;
  cfg.seq_len = kSeq;
  cfg.batch = kBatch;
  cfg.warmup = 1;
  cfg.eval_every = 0;
  cfg.progress = false;
  cfg.optimizer.name = "apollo";
  cfg.optimizer.apollo_rank = 8;
  cfg.grad_checkpoint = checkpoint ? trainer::GradCheckpoint::kOn : trainer::GradCheckpoint::kOff;
  cfg.out = fs::temp_directory_path() / ("hearth_bench_train_out_" + std::to_string(::getpid()));
  trainer::TrainResult r = trainer::train(*m.decoder, t, random_rows(kSteps * kBatch, m.decoder->config().vocab_size),
                                          {}, cfg, {"smollm2-135m", m.fingerprint});
  // Steady-state speed: the steps after the first (which pays one-time allocations).
  double seconds = 0;
  int steps = 0;
  std::ifstream in(cfg.out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line);
    if (j.contains("step_seconds") && j["step"].get<int>() > 1) seconds += j["step_seconds"].get<double>(), ++steps;
  }
  fs::remove_all(cfg.out);
  int64_t base_params = 0;
  for (const auto& layer : m.decoder->layers()) {
    for (const Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down}) {
      base_params += l->in_features() * l->out_features();
    }
  }
  base_params += m.decoder->lm_head().in_features() * m.decoder->lm_head().out_features();
  Json out{{"tokens_per_s", double(steps * kBatch * kSeq) / seconds},
           {"adapter_params", t.parameter_count()},
           {"matmul_params", base_params},
           {"optimizer_state_bytes", r.optimizer_state_bytes}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// Runs `self --child on|off`, returning its JSON line and its peak RSS in MB.
std::pair<Json, double> run_child(const char* self, bool checkpoint) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    execl(self, self, "--child", checkpoint ? "on" : "off", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipefd[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(n));
  close(pipefd[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "child failed (status %d): %s\n", status, text.c_str());
    return {Json(), 0};
  }
  const size_t last = text.find_last_of('{');
  return {Json::parse(text.substr(last)), double(ru.ru_maxrss) / 1024.0};
}

// Achieved FLOP/s of at::mm on 1024^3 in `dtype`.
double matmul_rate(at::ScalarType dtype) {
  at::Tensor a = at::randn({1024, 1024}).to(dtype), b = at::randn({1024, 1024}).to(dtype);
  at::mm(a, b);
  const int reps = 8;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) at::mm(a, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * 1024 * 1024 * 1024 * reps / s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--child") == 0) return child(std::strcmp(argv[2], "on") == 0);
  init_runtime(kThreads);
  if (!fs::exists(model_dir() / "config.json")) {
    fs::create_directories(model_dir().parent_path());
    StagedDirectory staged(model_dir());
    init_random_model("smollm2-135m", 1, staged.path());
    staged.commit();
  }
  if (!fs::exists(nf4_dir() / "config.json")) {
    ModelSource source = open_model_source(model_dir());
    QuantizationInfo info;
    info.source_fingerprint = source.fingerprint();
    write_quantized_model(nf4_dir(), source.config, *source.tensors, info, source.tokenizer_files);
  }
  const double fp32 = matmul_rate(at::kFloat), bf16 = matmul_rate(at::kBFloat16);
  std::printf("bench_train: SmolLM2-135M shape, nf4 base, LoRA r=16 on all projections, APOLLO r=8,\n"
              "seq %lld, batch %lld, %d threads, %lld steps (first not timed); each configuration in its own process,\n"
              "loading a pre-quantized folder (packed weights mapped)\n",
              (long long)kSeq, (long long)kBatch, kThreads, (long long)kSteps);
  std::printf("machine at::mm 1024^3: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n", fp32 / 1e9, bf16 / 1e9);
  std::printf("FLOPs per token counted as 6 x adapter params + 4 x base matmul params (projections + head):\n"
              "forward 2 + input-gradient 2 for the frozen base; forward, input- and weight-gradient 2 each for adapters\n\n");
  std::printf("%-22s %12s %14s %14s %14s\n", "grad checkpointing", "tokens/s", "peak RSS MB", "% fp32 peak", "% bf16 peak");
  for (bool ckpt : {true, false}) {
    auto [j, rss] = run_child(argv[0], ckpt);
    if (j.is_null()) continue;
    const double flops_per_token = 6.0 * j["adapter_params"].get<double>() + 4.0 * j["matmul_params"].get<double>();
    const double achieved = j["tokens_per_s"].get<double>() * flops_per_token;
    std::printf("%-22s %12.0f %14.0f %13.1f%% %13.1f%%\n", ckpt ? "on" : "off", j["tokens_per_s"].get<double>(), rss,
                100 * achieved / fp32, 100 * achieved / bf16);
  }
  return 0;
}
