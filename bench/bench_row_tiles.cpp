// Row tiles (inference/quant/row_tiles.h) against the row-major int8-activation kernels of the
// same set, for each set with tile kernels this CPU runs (AVX-512 VNNI, AVX2; `bench_row_tiles
// avx2` runs one), one thread, on the projection shapes of SmolLM2-135M and Qwen2.5-0.5B and
// Qwen's int8 head: 1 sequence (a decode step), 8 (a batched step) and 128 (a prompt). Rounds
// alternate between the two kernels so both see the same machine; prints the median GFLOP/s of
// each and their ratio. Prints figures; never fails.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/threads.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/quant/row_tiles.h"

namespace {

using hearth::QuantFormat;

constexpr int kRounds = 5;

double seconds_per_call(const std::function<void()>& fn, double min_seconds) {
  fn();  // warm-up
  int calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  while (elapsed < min_seconds) {
    fn();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return elapsed / calls;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void compare(const hearth::QuantKernelSet& k, int64_t rows, int64_t cols, QuantFormat format, int64_t seqs) {
  const hearth::QuantizedMatrix m = hearth::quantize_matrix(at::randn({rows, cols}) * 0.02, format);
  const hearth::PackedView v = m.view();
  const hearth::RowTiles tiles = hearth::tile_rows(v);
  std::vector<hearth::Q8Activation> row_major(seqs);
  std::vector<hearth::Q8Blocks> tiled(seqs);
  std::vector<const hearth::Q8Activation*> xs_row_major;
  std::vector<const hearth::Q8Blocks*> xs_tiled;
  at::Tensor y_row_major = at::empty({seqs, rows}), y_tiled = at::empty({seqs, rows});
  std::vector<float*> ys_row_major, ys_tiled;
  for (int64_t s = 0; s < seqs; ++s) {
    at::Tensor x = at::zeros({m.padded_cols()});
    x.narrow(0, 0, cols).normal_();
    k.quantize_activation(v, x.data_ptr<float>(), row_major[s]);
    k.quantize_blocks(v, x.data_ptr<float>(), tiled[s]);
    xs_row_major.push_back(&row_major[s]);
    xs_tiled.push_back(&tiled[s]);
    ys_row_major.push_back(y_row_major[s].data_ptr<float>());
    ys_tiled.push_back(y_tiled[s].data_ptr<float>());
  }
  const double min_seconds = 0.1;
  std::vector<double> t_row_major, t_tiled;
  for (int round = 0; round < kRounds; ++round) {
    t_row_major.push_back(seconds_per_call([&] { k.matmul_q8_rows(v, xs_row_major.data(), seqs, ys_row_major.data(), 0, rows); }, min_seconds));
    t_tiled.push_back(seconds_per_call([&] { k.matmul_row_tiles(tiles, xs_tiled.data(), seqs, ys_tiled.data(), 0, tiles.tiles); }, min_seconds));
  }
  const double flops = 2.0 * rows * cols * seqs / 1e9;
  const double a = flops / median(t_row_major), b = flops / median(t_tiled);
  // Both round x the same way: what differs is the order of the float sums.
  const double diff = ((y_tiled - y_row_major).abs().max() / y_row_major.abs().max()).item<double>();
  const std::string shape = std::to_string(rows) + " x " + std::to_string(cols);
  std::printf("  %-16s %-5s %5ld %12.1f %12.1f %8.2fx %12.1e\n", shape.c_str(), hearth::quant_format_name(format),
              static_cast<long>(seqs), a, b, b / a, diff);
}

void compare_set(hearth::KernelIsa isa) {
  const hearth::QuantKernelSet& k = hearth::kernels_for(isa);
  std::printf("Row tiles vs row-major int8-activation kernels, %s, 1 thread, GFLOP/s (medians of %d rounds)\n", k.name, kRounds);
  std::printf("  %-16s %-5s %5s %12s %12s %9s %12s\n", "[rows x cols]", "fmt", "seqs", "row-major", "row tiles", "ratio", "rel. diff");
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1536, 576}, {576, 1536}, {4864, 896}, {896, 4864}}) {
    for (QuantFormat f : {QuantFormat::kNF4, QuantFormat::kInt8})
      for (int64_t seqs : {1, 8, 128}) compare(k, rows, cols, f, seqs);
  }
  // Qwen2.5-0.5B's tied head in int8 (136 MB, streamed from DRAM).
  for (int64_t seqs : {1, 8}) compare(k, 151936, 896, QuantFormat::kInt8, seqs);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string only = argc > 1 ? argv[1] : "";
  hearth::set_num_threads(1);
  bool ran = false;
  for (hearth::KernelIsa isa : {hearth::KernelIsa::kAvx512Vnni, hearth::KernelIsa::kAvx2}) {
    if (!hearth::cpu_supports_isa(isa) || (!only.empty() && only != hearth::kernel_isa_name(isa))) continue;
    compare_set(isa);
    ran = true;
  }
  if (!ran) std::printf("bench_row_tiles: no row-tile kernel set (avx512-vnni, avx2) this CPU runs%s\n", only.empty() ? "" : " by that name");
  return 0;
}
