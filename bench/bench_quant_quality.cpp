// Quality of the quantized formats on real weights: stories260K perplexity on
// tinystories/valid_a.txt (ctx 256, the project's protocol) for fp32, int8, nf4 and int4, with
// the bits per weight actually stored (scales included) and the ratio to fp32.
//   build/bench/bench_quant_quality [--embeddings int8|nf4|int4|bf16] [--threads N]
#include <cstdio>
#include <cstring>
#include <string>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/runtime.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/quant/quant.h"

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
  std::printf("%-6s %10s %10s %12s %14s\n", "format", "ppl", "vs fp32", "proj bits/w", "weights MB");
  double fp32 = 0;
  for (const char* format : {"fp32", "int8", "nf4", "int4"}) {
    LoadOptions options;
    if (std::strcmp(format, "fp32") != 0) {
      options.quant = parse_quant_format(format);
      options.embeddings = parse_embedding_storage(embeddings);
    }
    LoadedModel m = load_model(model, options);
    PerplexityResult r = evaluate_perplexity(*m.decoder, perplexity_token_stream(*m.tokenizer, text), 256);
    if (fp32 == 0) fp32 = r.perplexity;
    std::printf("%-6s %10.4f %+9.2f%% %12.3f %14.3f\n", format, r.perplexity, 100 * (r.perplexity / fp32 - 1),
                projection_bits(*m.decoder), m.decoder->weight_bytes() / 1e6);
  }
  return 0;
}
