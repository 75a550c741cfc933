// SCRATCH (not committed): per-matrix sensitivity of a quantized folder's matrices in the fp32 model.
#include <cstdio>
#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/runtime.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/quant/quant.h"
using namespace hearth;
int main(int argc, char** argv) {
  init_runtime(1);
  LoadedModel m = load_model(asset_path("models/stories260K"), LoadOptions{});
  LoadedModel q = load_model(argv[1], LoadOptions{});
  std::vector<int32_t> stream = perplexity_token_stream(*m.tokenizer, read_file(asset_path("data/tinystories/valid_a.txt")));
  stream.resize(60000);
  c10::InferenceMode guard;
  const double base = evaluate_perplexity(*m.decoder, stream, 256).perplexity;
  std::printf("fp32 %.4f all %.4f\n", base, evaluate_perplexity(*q.decoder, stream, 256).perplexity);
  Decoder& d = *m.decoder;
  double sum = 0;
  for (size_t l = 0; l < d.layers().size(); ++l) {
    auto qp = q.decoder->layers()[l].projections();
    auto dp = d.layers()[l].projections();
    for (size_t i = 0; i < dp.size(); ++i) {
      Linear saved = *dp[i].second;
      *dp[i].second = *qp[i].second;
      const double p = evaluate_perplexity(d, stream, 256).perplexity;
      sum += 100 * (p / base - 1);
      std::printf("L%zu %-10s %+.3f%%\n", l, dp[i].first, 100 * (p / base - 1));
      std::fflush(stdout);
      *dp[i].second = saved;
    }
  }
  Linear head = d.lm_head();
  d.lm_head() = q.decoder->lm_head();
  std::printf("head only %+.3f%%  sum of projections %+.3f%%\n", 100 * (evaluate_perplexity(d, stream, 256).perplexity / base - 1), sum);
  return 0;
}
