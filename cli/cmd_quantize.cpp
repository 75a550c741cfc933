// `hearth quantize`: writes a quantized model folder (packed 4/8-bit weights, mapped on load), or
// with --to gguf a GGUF file in one of GGUF's types (llama.cpp loads it; so does Hearth, mapped).
#include <cstdio>

#include "cli/command.h"
#include "core/json.h"
#include "inference/gguf_export.h"
#include "inference/model_loader.h"
#include "inference/quant/quant.h"

namespace hearth::cli {
namespace {

struct QuantizeCommand {
  std::string model, tokenizer, format = "nf4", embeddings = "int8", out, to = "hearth";

  void run() {
    if (to == "gguf") return run_gguf();
    require(to == "hearth", ErrorCode::kInvalidArgument, "--to must be hearth or gguf, not \"" + to + "\"");
    ModelSource source = open_model_source(model, tokenizer);
    require(!source.quantization, ErrorCode::kInvalidArgument, model + " is already quantized");
    QuantizationInfo info;
    info.format = parse_quant_format(format);
    info.embeddings = parse_embedding_storage(embeddings);
    info.source_fingerprint = source.fingerprint();
    write_quantized_model(out, source.config, *source.tensors, info, source.tokenizer_files);
    const double full = 16.0 * source.config.parameter_count();  // bits as bf16
    const double stored = 8.0 * std::filesystem::file_size(std::filesystem::path(out) / "model.safetensors");
    std::printf("wrote %s: %s projections, %s embeddings, %.1f MB (%.2f bits per parameter overall)\n", out.c_str(),
                format.c_str(), embeddings.c_str(), stored / 8e6, 16.0 * stored / full);
    print_json_result(Json{{"out", out}, {"format", format}, {"embeddings", embeddings}, {"bytes", stored / 8},
                           {"bits_per_parameter", 16.0 * stored / full}}
                          .dump());
  }

  void run_gguf() {
    ModelSource source = open_model_source(model, tokenizer);
    require(!source.quantization, ErrorCode::kInvalidArgument, model + " is a quantized folder; convert its full-precision source");
    GgufExportOptions options;
    if (format != "f32") options.format = parse_any_quant_format(format);
    require(!options.format || is_gguf_format(*options.format), ErrorCode::kInvalidArgument,
            "--to gguf takes a GGUF type: q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, f16, bf16 or f32");
    const GgufExportReport r =
        write_gguf_model(out, source.config, *source.tensors, source.gguf.get(), source.gguf ? "" : source.tokenizer, options);
    const double bytes = static_cast<double>(std::filesystem::file_size(out));
    std::printf("wrote %s: %s, %lld tensors (%lld written f16: rows not whole blocks), %.1f MB\n", out.c_str(), format.c_str(),
                static_cast<long long>(r.tensors), static_cast<long long>(r.fallback_f16), bytes / 1e6);
    print_json_result(Json{{"out", out}, {"format", format}, {"to", "gguf"}, {"bytes", bytes}, {"tensors", r.tensors},
                           {"fallback_f16", r.fallback_f16}}
                          .dump());
  }
};

CommandRegistration registration("quantize", [](CLI::App& app) {
  auto cmd = std::make_shared<QuantizeCommand>();
  CLI::App* sub = app.add_subcommand("quantize", "write a quantized model folder (nf4, int4 or int8)");
  sub->add_option("--model", cmd->model, "Hugging Face folder or llama2.c model")->required();
  sub->add_option("--tokenizer", cmd->tokenizer, "tokenizer file (default: found beside the model)");
  sub->add_option("--format", cmd->format, "nf4 (QLoRA, double-quantized), int4 (groups of 32) or int8")->capture_default_str();
  sub->add_option("--embeddings", cmd->embeddings, "embedding table and output head: int8, nf4, int4 or bf16")->capture_default_str();
  sub->add_option("--out", cmd->out, "output folder (or .gguf file with --to gguf)")->required();
  sub->add_option("--to", cmd->to, "hearth (a quantized folder) or gguf (a GGUF file; --format q8_0|q4_0|q4_1|q4_k|q5_k|q6_k|f16|bf16|f32)")
      ->capture_default_str();
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
