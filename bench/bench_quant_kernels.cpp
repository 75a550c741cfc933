// Benchmarks the quantized kernels on Qwen2.5-0.5B shapes: the decode GEMV (GB/s of packed bytes
// streamed, against dense fp32 and bf16 at::mv) and the prefill / backward tile GEMMs (GFLOP/s
// against at::mm fp32, and a prompt's rows through the int8 kernels: PromptRowsScope, its speed-up
// over the tiles in parentheses), with 1 and 2 threads; --gguf: the GGUF block formats per kernel set;
// --prompt: only the prompt rows, on SmolLM2-135M and Qwen2.5-0.5B shapes.
// Prints figures; never fails.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/threads.h"
#include "inference/quant/quant_matmul.h"

namespace {

using hearth::QuantFormat;
using hearth::QuantizedMatrix;

// Copies enough to exceed the 48 MB L3, so the GEMV reads from DRAM as it does in a real decode.
constexpr size_t kStreamBytes = size_t(256) << 20;

double seconds_per_call(const std::function<void(int)>& fn, double min_seconds = 0.3) {
  fn(0);  // warm-up
  int calls = 0;
  auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  do {
    fn(++calls);
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < min_seconds);
  return elapsed / calls;
}

QuantizedMatrix clone(const QuantizedMatrix& m) {
  QuantizedMatrix c = m;
  for (at::Tensor* t : {&c.codes, &c.scales, &c.absmax_codes, &c.absmax_scale, &c.absmax_offset}) {
    if (t->defined()) *t = t->clone();
  }
  return c;
}

size_t copies_for(size_t bytes) { return std::max<size_t>(1, (kStreamBytes + bytes - 1) / bytes); }

void bench_gemv(const at::Tensor& w, const std::vector<QuantFormat>& formats) {
  const int64_t rows = w.size(0), cols = w.size(1);
  std::printf("\nGEMV %lld x %lld (decode, one token; matrices rotated over > L3 so bytes come from DRAM)\n",
              static_cast<long long>(rows), static_cast<long long>(cols));
  std::printf("  %-10s %7s %10s %10s %9s %12s\n", "format", "threads", "us/call", "GB/s", "bits/w", "vs fp32 mv");
  at::Tensor x = at::randn({cols});
  at::Tensor y = at::empty({rows});
  for (int threads : {1, 2}) {
    hearth::set_num_threads(threads);
    double fp32_time = 0.0;
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
      const size_t bytes = w.numel() * at::elementSize(dtype);
      std::vector<at::Tensor> ws(copies_for(bytes));
      for (auto& c : ws) c = w.to(dtype).contiguous();
      at::Tensor xd = x.to(dtype);
      const double t = seconds_per_call([&](int i) { at::mv(ws[i % ws.size()], xd); });
      if (dtype == at::kFloat) fp32_time = t;
      std::printf("  %-10s %7d %10.1f %10.2f %9.2f %11.2fx\n", dtype == at::kFloat ? "fp32 mv" : "bf16 mv", threads, t * 1e6,
                  bytes / t / 1e9, 8.0 * at::elementSize(dtype), fp32_time / t);
    }
    for (QuantFormat f : formats) {
      QuantizedMatrix m = hearth::quantize_matrix(w, f);
      std::vector<QuantizedMatrix> ms(copies_for(m.storage_bytes()));
      for (auto& c : ms) c = clone(m);
      // The default GEMV (int8 activations where the CPU has VNNI) and the exact float one.
      for (auto rounding : {hearth::ActivationRounding::kInt8WhereFaster, hearth::ActivationRounding::kExact}) {
        const bool exact = rounding == hearth::ActivationRounding::kExact;
        if (exact && hearth::active_kernels().matmul_q8_rows == nullptr) continue;
        const double t = seconds_per_call(
            [&](int i) { hearth::quant_matvec(ms[i % ms.size()], x.data_ptr<float>(), y.data_ptr<float>(), rounding); });
        const std::string name = std::string(hearth::quant_format_name(f)) + (exact ? " exact" : "");
        std::printf("  %-10s %7d %10.1f %10.2f %9.3f %11.2fx\n", name.c_str(), threads, t * 1e6, m.storage_bytes() / t / 1e9,
                    m.bits_per_weight(), fp32_time / t);
      }
    }
  }
}

void bench_gemm(const at::Tensor& w, const std::vector<QuantFormat>& formats, int64_t n) {
  const int64_t rows = w.size(0), cols = w.size(1);
  const double flops = 2.0 * n * rows * cols;
  std::printf("\nGEMM n=%lld x [%lld x %lld]^T (prefill) and its backward g W, GFLOP/s\n", static_cast<long long>(n),
              static_cast<long long>(rows), static_cast<long long>(cols));
  std::printf("  %-10s %7s %12s %12s %12s %14s\n", "format", "threads", "forward", "backward", "fwd vs fp32", "prompt rows");
  at::Tensor x = at::randn({n, cols}), g = at::randn({n, rows});
  for (int threads : {1, 2}) {
    hearth::set_num_threads(threads);
    const double t_mm = seconds_per_call([&](int) { at::mm(x, w.t()); }, 0.5);
    const double t_mmb = seconds_per_call([&](int) { at::mm(g, w); }, 0.5);
    std::printf("  %-10s %7d %12.1f %12.1f %11.2fx\n", "fp32 mm", threads, flops / t_mm / 1e9, flops / t_mmb / 1e9, 1.0);
    for (QuantFormat f : formats) {
      QuantizedMatrix m = hearth::quantize_matrix(w, f);
      const double t = seconds_per_call([&](int) { hearth::quant_matmul(m, x); }, 0.5);
      const double tb = seconds_per_call([&](int) { hearth::quant_matmul_transposed(m, g); }, 0.5);
      // A generation's prompt: int8 activations through the batched GEMV (PromptRowsScope).
      const double tp = seconds_per_call([&](int) {
        hearth::PromptRowsScope prompt;
        hearth::quant_matmul(m, x);
      }, 0.5);
      std::printf("  %-10s %7d %12.1f %12.1f %11.2fx %8.1f (%.2fx)\n", hearth::quant_format_name(f), threads, flops / t / 1e9,
                  flops / tb / 1e9, t_mm / t, flops / tp / 1e9, t / tp);
    }
  }
}

}  // namespace

// --prompt: only a 128-token prompt through the int8 kernels (PromptRowsScope), on the SmolLM2-135M
// and Qwen2.5-0.5B MLP shapes, GFLOP/s with 1 and 2 threads: the quick figure for kernel work.
int bench_prompt_rows() {
  std::printf("Prompt rows, n=128, GFLOP/s (kernels: %s)\n", hearth::active_kernels().name);
  std::printf("  %-16s %-6s %10s %10s\n", "[rows x cols]", "format", "1 thread", "2 threads");
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1536, 576}, {576, 1536}, {4864, 896}, {896, 4864}}) {
    const at::Tensor w = at::randn({rows, cols}) * 0.02, x = at::randn({128, cols});
    for (QuantFormat f : {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt8}) {
      const QuantizedMatrix m = hearth::quantize_matrix(w, f);
      double gflops[2];
      for (int threads : {1, 2}) {
        hearth::set_num_threads(threads);
        const double t = seconds_per_call([&](int) {
          hearth::PromptRowsScope prompt;
          hearth::quant_matmul(m, x);
        }, 0.5);
        gflops[threads - 1] = 2.0 * 128 * rows * cols / t / 1e9;
      }
      const std::string shape = std::to_string(rows) + " x " + std::to_string(cols);
      std::printf("  %-16s %-6s %10.1f %10.1f\n", shape.c_str(), hearth::quant_format_name(f), gflops[0], gflops[1]);
    }
  }
  return 0;
}

// --gguf: the GGUF block formats on Qwen2.5-0.5B's down projection, with each kernel set.
int bench_gguf() {
  const std::vector<QuantFormat> gguf = {QuantFormat::kQ8_0, QuantFormat::kQ4_0, QuantFormat::kQ4_1, QuantFormat::kQ4_K,
                                         QuantFormat::kQ5_K, QuantFormat::kQ6_K, QuantFormat::kF16, QuantFormat::kBF16};
  at::Tensor w = at::randn({896, 4864}) * 0.02;
  for (auto isa : {hearth::KernelIsa::kScalar, hearth::KernelIsa::kAvx2, hearth::KernelIsa::kAvx512}) {
    if (!hearth::cpu_supports_isa(isa)) continue;
    hearth::force_kernel_isa(isa);
    std::printf("GGUF formats, kernels: %s\n", hearth::active_kernels().name);
    bench_gemv(w, gguf);
    bench_gemm(w, gguf, 128);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--gguf") return bench_gguf();
  if (argc > 1 && std::string(argv[1]) == "--prompt") return bench_prompt_rows();
  const std::vector<QuantFormat> all = {QuantFormat::kNF4, QuantFormat::kNF4_32, QuantFormat::kInt4, QuantFormat::kInt8};
  std::printf("Quantized kernel benchmark (kernels: %s)\n", hearth::active_kernels().name);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4864, 896}, {896, 4864}}) {
    at::Tensor w = at::randn({rows, cols}) * 0.02;
    bench_gemv(w, all);
    bench_gemm(w, all, 128);
  }
  if (argc > 1 && std::string(argv[1]) == "--no-head") return 0;
  // The tied embedding / LM head of Qwen2.5-0.5B, kept in int8.
  at::Tensor head = at::randn({151936, 896}) * 0.02;
  bench_gemv(head, {QuantFormat::kInt8});
  bench_gemm(head, {QuantFormat::kInt8}, 128);
  return 0;
}
