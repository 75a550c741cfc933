#include "cli/model_options.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "adapters/adapter_set.h"
#include "adapters/peft_files.h"

namespace hearth::cli {

void ModelOptions::add_to(CLI::App& app, bool with_adapter) {
  app.add_option("--model", model, "Hugging Face folder, quantized folder, llama2.c file, or folder with a llama2.c model")->required();
  app.add_option("--tokenizer", tokenizer, "tokenizer file (default: found beside the model)");
  app.add_option("--dtype", dtype, "precision of dense weights: fp32 or bf16")->capture_default_str();
  app.add_option("--quant", quant, "quantize projections at load time: nf4, nf4-32, int4 or int8");
  app.add_option("--embeddings", embeddings, "with --quant: storage of embeddings and output head: int8, nf4, nf4-32, int4, bf16")
      ->capture_default_str();
  if (with_adapter) app.add_option("--adapter", adapter, "a LoRA/DoRA adapter folder (PEFT layout) to apply");
}

LoadOptions ModelOptions::load_options() const {
  LoadOptions o;
  o.compute_dtype = parse_compute_dtype(dtype);
  if (!quant.empty()) o.quant = parse_quant_format(quant);
  o.embeddings = parse_embedding_storage(embeddings);
  return o;
}

engine::BaseModelSpec ModelOptions::base_spec() const {
  engine::BaseModelSpec b;
  b.path = model;
  b.tokenizer = tokenizer;
  b.dtype = dtype;
  b.quant = quant;
  b.embeddings = embeddings;
  b.load_options();  // names checked before anything is opened
  return b;
}

LoadedModel ModelOptions::load() const {
  auto t0 = std::chrono::steady_clock::now();
  LoadedModel m = load_model(model, load_options(), tokenizer);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("loaded {} ({} model, {:.1f}M parameters, {:.1f} MB of weights) in {:.0f} ms", model, m.format,
               m.decoder->config().parameter_count() / 1e6, m.decoder->weight_bytes() / 1e6, ms);
  if (!adapter.empty()) {
    attach_adapter(*m.decoder, load_peft_adapter(adapter, *m.decoder, m.fingerprint));
    spdlog::info("applied adapter {}", adapter);
  }
  return m;
}

}  // namespace hearth::cli
