// Quality of the quantized formats on real weights: stories260K perplexity on
// tinystories/valid_a.txt (ctx 256, the project's protocol) for fp32, int8, nf4 and int4, with
// the bits per weight actually stored (scales included) and the ratio to fp32. The protocol runs
// whole windows (the exact tile GEMM); a second figure scores the first windows one token at a
// time through the KV cache, i.e. the decode GEMV generation uses, which on AVX-512 VNNI rounds
// activations to int8, against the same with the exact float GEMV.
//   build/bench/bench_quant_quality [--embeddings int8|nf4|int4|bf16] [--threads N]
#include <cstdio>
#include <cstring>
#include <string>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/runtime.h"
#include "inference/kv_cache.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/quant/quant.h"
#include "inference/quant/quant_kernels.h"

using namespace hearth;

namespace {

// Bits per stored weight over the projections only (the formats' own overhead).
double projection_bits(const Decoder& d) {
  double bits = 0, weights = 0;
  for (const auto& layer : d.layers()) {
    for (const Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down}) {
      bits += 8.0 * l->weight_bytes();
      weights += double(l->in_features()) * l->out_features();
    }
  }
  return bits / weights;
}

// Perplexity of the first `windows` windows of ctx+1 tokens, each token fed alone through the
// KV cache as generation does.
double decode_path_perplexity(const Decoder& d, const std::vector<int32_t>& stream, int64_t ctx, int64_t windows) {
  double nll = 0;
  int64_t scored = 0;
  for (int64_t w = 0; w < windows && (w + 1) * (ctx + 1) <= int64_t(stream.size()); ++w) {
    KVCache cache(d.config(), 1, ctx + 1);
    for (int64_t t = 0; t < ctx; ++t) {
      const int64_t i = w * (ctx + 1) + t;
      at::Tensor token = at::full({1, 1}, int64_t(stream[i]), at::kLong);
      at::Tensor logits = d.forward({token, {}, {}, &cache}).reshape({-1}).to(at::kDouble);
      nll -= at::log_softmax(logits, 0)[stream[i + 1]].item<double>();
      ++scored;
    }
  }
  return std::exp(nll / double(scored));
}

}  // namespace

int main(int argc, char** argv) {
  std::string embeddings = "int8";
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--embeddings")) embeddings = argv[i + 1];
    if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
  }
  init_runtime(threads);
  const auto model = asset_path("models/stories260K");
  const std::string text = read_file(asset_path("data/tinystories/valid_a.txt"));
  std::printf("stories260K on tinystories/valid_a.txt, ctx 256, embeddings/head %s when quantized\n", embeddings.c_str());
  constexpr int64_t kDecodeWindows = 16;
  std::printf("decode ppl: first %lld windows token by token; exact = float GEMV, kernels = %s\n",
              static_cast<long long>(kDecodeWindows), active_kernels().name);
  std::printf("%-6s %10s %10s %12s %14s %12s %12s %10s\n", "format", "ppl", "vs fp32", "proj bits/w", "weights MB",
              "decode exact", "decode used", "used/exact");
  double fp32 = 0;
  for (const char* format : {"fp32", "int8", "nf4", "int4"}) {
    LoadOptions options;
    if (std::strcmp(format, "fp32") != 0) {
      options.quant = parse_quant_format(format);
      options.embeddings = parse_embedding_storage(embeddings);
    }
    LoadedModel m = load_model(model, options);
    const std::vector<int32_t> stream = perplexity_token_stream(*m.tokenizer, text);
    PerplexityResult r = evaluate_perplexity(*m.decoder, stream, 256);
    if (fp32 == 0) fp32 = r.perplexity;
    const KernelIsa best = cpu_supports_isa(KernelIsa::kAvx512) ? KernelIsa::kAvx512 : KernelIsa::kScalar;
    force_kernel_isa(best);  // the float GEMV: no activation rounding
    const double exact = decode_path_perplexity(*m.decoder, stream, 256, kDecodeWindows);
    force_kernel_isa(KernelIsa::kAuto);
    const double used = decode_path_perplexity(*m.decoder, stream, 256, kDecodeWindows);
    std::printf("%-6s %10.4f %+9.2f%% %12.3f %14.3f %12.4f %12.4f %+9.2f%%\n", format, r.perplexity, 100 * (r.perplexity / fp32 - 1),
                projection_bits(*m.decoder), m.decoder->weight_bytes() / 1e6, exact, used, 100 * (used / exact - 1));
  }
  return 0;
}
