// `hearth adapters merge|info`: fold a PEFT-layout adapter into its base as a full-precision
// Hugging Face folder or a re-quantized model folder (with the perplexity change measured on
// --eval-data), and describe an adapter folder.
#include <cstdio>

#include "adapters/adapter_set.h"
#include "adapters/gguf_lora.h"
#include "adapters/merge.h"
#include "adapters/peft_files.h"
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "inference/perplexity.h"

namespace hearth::cli {
namespace {

namespace fs = std::filesystem;

// The tokenizer and the files that describe it, copied into a merged folder.
std::vector<fs::path> tokenizer_files(const ModelOptions& model) {
  const fs::path tokenizer = model.tokenizer.empty() ? find_tokenizer(model.model) : fs::path(model.tokenizer);
  std::vector<fs::path> files = {tokenizer};
  for (const char* extra : {"tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}) {
    const fs::path p = tokenizer.parent_path() / extra;
    if (fs::is_regular_file(p) && p != tokenizer) files.push_back(p);
  }
  return files;
}

// Perplexity of `decoder` on the eval stream by the project's protocol (inference/perplexity.h).
double perplexity_of(const Decoder& decoder, const std::vector<int32_t>& stream, int64_t ctx) {
  return evaluate_perplexity(decoder, stream, ctx).perplexity;
}

Json config_json(const AdapterConfig& c) {
  return {{"method", adapter_method_name(c.method)}, {"rank", c.rank},        {"alpha", c.alpha},
          {"scale", c.scale()},                       {"rslora", c.rslora},     {"dropout", c.dropout},
          {"targets", c.targets},                     {"first_layer", c.first_layer}, {"last_layer", c.last_layer}};
}

struct AdaptersCommands {
  ModelOptions model;
  std::string adapter, out, out_dtype = "fp32", requantize, out_embeddings = "int8", eval_data, format = "hearth";
  int64_t ctx = 256;

  void merge() {
    require(format == "hearth" || format == "gguf", ErrorCode::kInvalidArgument, "--format must be hearth or gguf, not \"" + format + "\"");
    MergeOptions options;
    options.dtype = parse_compute_dtype(out_dtype);
    if (!requantize.empty() && format != "gguf") options.requantize = parse_quant_format(requantize);
    options.embeddings = parse_embedding_storage(out_embeddings);
    LoadedModel m = model.load();
    auto a = load_peft_adapter(adapter, *m.decoder, m.fingerprint);
    // Read before anything is written, so a bad eval file leaves no folder behind.
    std::vector<int32_t> eval_stream;
    if (!eval_data.empty()) {
      eval_stream = perplexity_token_stream(*m.tokenizer, read_file(eval_data, size_t(1) << 30));
      require(static_cast<int64_t>(eval_stream.size()) > ctx, ErrorCode::kInvalidArgument,
              "--eval-data " + eval_data + " has fewer than " + std::to_string(ctx + 1) + " tokens (one --ctx window)");
    }
    std::string written = options.requantize ? requantize : out_dtype;
    MergeReport r;
    if (format == "gguf") {
      written = requantize.empty() ? "f32" : requantize;
      std::optional<QuantFormat> type;
      if (written != "f32") type = parse_any_quant_format(written);
      require(!type || is_gguf_format(*type), ErrorCode::kInvalidArgument,
              "--format gguf --requantize takes a GGUF type: q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, f16, bf16 or f32");
      r = merge_adapter_to_gguf(*m.decoder, *a, out, m.gguf.get(), m.gguf ? fs::path() : m.tokenizer_file, type);
    } else {
      require(!m.gguf, ErrorCode::kInvalidArgument, "the base is a GGUF file: merge it with --format gguf");
      r = merge_adapter_to_folder(*m.decoder, *a, out, tokenizer_files(model), options);
    }
    std::printf("merged %lld adapted projections into %s (%s, %lld tensors)\n",
                static_cast<long long>(r.merged_modules), out.c_str(), written.c_str(),
                static_cast<long long>(r.tensors_written));
    Json result{{"out", out}, {"merged_modules", r.merged_modules}, {"format", written}};
    if (r.requantization_relative_error) {
      std::printf("re-quantizing moved the merged projection weights by %.5f (relative Frobenius error)\n",
                  *r.requantization_relative_error);
      result["requantization_relative_frobenius_error"] = *r.requantization_relative_error;
    }
    if (!eval_stream.empty()) {
      // The base with the adapter attached computes exactly the full-precision merged model, so
      // the written folder's change from it is what re-quantizing (or bf16) cost.
      const double base = perplexity_of(*m.decoder, eval_stream, ctx);
      attach_adapter(*m.decoder, a);
      const double adapted = perplexity_of(*m.decoder, eval_stream, ctx);
      detach_adapters(*m.decoder);
      const LoadedModel merged = load_model(out, LoadOptions{});
      const double after = perplexity_of(*merged.decoder, eval_stream, ctx);
      const double change = 100.0 * (after / adapted - 1.0);
      std::printf("perplexity on %s (ctx %lld): base %.4f, base + adapter %.4f, merged %s %s %.4f (%+.2f%%)\n",
                  eval_data.c_str(), static_cast<long long>(ctx), base, adapted, written.c_str(),
                  format == "gguf" ? "GGUF" : "folder", after, change);
      result["eval_ppl_base"] = base;
      result["eval_ppl_adapted"] = adapted;
      result["eval_ppl_merged"] = after;
      result["merged_ppl_change_pct"] = change;
    } else if (options.requantize) {
      std::printf("pass --eval-data FILE to measure the perplexity change of re-quantizing\n");
    }
    print_json_result(result.dump());
  }

  void export_adapter() {
    require(format == "gguf", ErrorCode::kInvalidArgument, "--format must be gguf (the only export format)");
    LoadedModel m = model.load();
    auto a = load_peft_adapter(adapter, *m.decoder, m.fingerprint);
    const GgufLoraReport r = export_gguf_lora(*a, m.decoder->config(), out, fs::path(adapter).filename().string());
    std::printf("wrote %s: LoRA for llama.cpp (--lora), %lld projections, rank %lld, alpha %g\n", out.c_str(),
                static_cast<long long>(r.modules), static_cast<long long>(a->config().rank), r.alpha);
    print_json_result(Json{{"out", out}, {"modules", r.modules}, {"rank", a->config().rank}, {"alpha", r.alpha}}.dump());
  }

  void info() {
    const AdapterFileInfo i = read_peft_adapter_info(adapter);
    Json d = config_json(i.config);
    d["parameters"] = i.parameter_count;
    d["tensors"] = i.tensor_count;
    d["base_model"] = i.base_model_name;
    d["base_fingerprint"] = i.base_fingerprint.empty() ? Json(nullptr) : Json(i.base_fingerprint);
    d["training_summary"] = i.training_summary;
    std::printf("%s\n", d.dump(2).c_str());
    print_json_result(d.dump());
  }
};

CommandRegistration adapters_command("adapters", [](CLI::App& app) {
  auto cmd = std::make_shared<AdaptersCommands>();
  CLI::App* adapters = app.add_subcommand("adapters", "merge and inspect PEFT-layout adapters");
  adapters->require_subcommand(1);

  CLI::App* merge = adapters->add_subcommand("merge", "fold an adapter into its base model as a Hugging Face folder");
  cmd->model.add_to(*merge, /*with_adapter=*/false);
  merge->add_option("--adapter", cmd->adapter, "PEFT adapter folder")->required();
  merge->add_option("--out", cmd->out, "output folder")->required();
  merge->add_option("--out-dtype", cmd->out_dtype, "precision of the written weights: fp32 or bf16")
      ->capture_default_str();
  merge->add_option("--requantize", cmd->requantize,
                    "write a quantized model folder instead: nf4, int4 or int8 (projections)");
  merge->add_option("--out-embeddings", cmd->out_embeddings,
                    "with --requantize: storage of the embedding table and head: int8, nf4, int4, bf16")
      ->capture_default_str();
  merge->add_option("--eval-data", cmd->eval_data,
                    "text file: report perplexity of the base, base + adapter, and the merged folder");
  merge->add_option("--ctx", cmd->ctx, "with --eval-data: tokens of context per window")->capture_default_str();
  merge->add_option("--format", cmd->format,
                    "hearth (a folder) or gguf (one .gguf file; --requantize q8_0|q4_0|q4_1|q4_k|q5_k|q6_k|f16|bf16, default f32)")
      ->capture_default_str();
  merge->callback([cmd] { cmd->merge(); });

  CLI::App* exp = adapters->add_subcommand("export", "write an adapter in another tool's format (gguf: llama.cpp --lora)");
  cmd->model.add_to(*exp, /*with_adapter=*/false);
  exp->add_option("--adapter", cmd->adapter, "PEFT adapter folder")->required();
  exp->add_option("--format", cmd->format, "gguf")->required();
  exp->add_option("--out", cmd->out, "output .gguf file")->required();
  exp->callback([cmd] { cmd->export_adapter(); });

  CLI::App* info = adapters->add_subcommand("info", "describe an adapter folder");
  info->add_option("--adapter", cmd->adapter, "PEFT adapter folder")->required();
  info->callback([cmd] { cmd->info(); });
});

}  // namespace
}  // namespace hearth::cli
