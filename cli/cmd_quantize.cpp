// `hearth quantize`: writes a quantized model folder (packed 4/8-bit weights, mapped on load) by
// plain rounding or a calibrated method under an optional bit budget, or with --to gguf a GGUF file.
#include <charconv>
#include <cstdio>

#include "cli/command.h"
#include "core/json.h"
#include "inference/calibrated_quantize.h"
#include "inference/gguf_export.h"
#include "inference/model_loader.h"
#include "trainer/quantization_distillation.h"

namespace hearth::cli {
namespace {

struct QuantizeCommand {
  std::string model, tokenizer, format = "nf4", embeddings = "int8", out, method = "rtn", to = "hearth";
  std::vector<std::string> calibrate;
  std::string split_table;  // "", "auto" or a row count
  std::string propagate = "auto";
  int64_t calib_tokens = 8192;
  double bits = 0;
  bool embeddings_given = false;
  trainer::DistillOptions distill;

  void run() {
    if (to == "gguf") return run_gguf();
    require(to == "hearth", ErrorCode::kInvalidArgument, "--to must be hearth or gguf, not \"" + to + "\"");
    ModelSource source = open_model_source(model, tokenizer);
    require(!source.quantization, ErrorCode::kInvalidArgument, model + " is already quantized");
    QuantizeRequest request;
    request.format = parse_quant_format(format);
    request.embeddings = parse_embedding_storage(embeddings);
    request.embeddings_fixed = embeddings_given;
    request.method = parse_quant_method(method);
    for (const std::string& f : calibrate) request.calibration.emplace_back(f);
    request.calibration_tokens = calib_tokens;
    request.bits = bits;
    request.split_table_rows = split_table_rows();
    request.propagation = parse_propagation(propagate);
    const QuantizeSummary s = trainer::quantize_with_distillation(out, source, request, distill);
    const double stored = 8.0 * std::filesystem::file_size(std::filesystem::path(out) / "model.safetensors");
    std::printf("wrote %s: %s, %s projections, %.3f bits per weight (projections %.3f), %.1f MB", out.c_str(), method.c_str(),
                format.c_str(), s.bits_per_weight, s.projection_bits, stored / 8e6);
    if (s.calibration_tokens > 0) std::printf(", calibrated on %lld tokens", static_cast<long long>(s.calibration_tokens));
    if (s.split_table_rows > 0) std::printf(", %lld table rows at int8", static_cast<long long>(s.split_table_rows));
    else if (bits > 0) std::printf(", %lld matrices kept at int8", static_cast<long long>(s.high_precision));
    std::printf("\n");
    print_json_result(Json{{"out", out},
                           {"format", format},
                           {"method", method},
                           {"bytes", stored / 8},
                           {"bits_per_parameter", stored / source.config.parameter_count()},
                           {"bits_per_weight", s.bits_per_weight},
                           {"projection_bits_per_weight", s.projection_bits},
                           {"calibration_tokens", s.calibration_tokens},
                           {"high_precision_matrices", s.high_precision},
                           {"split_table_rows", s.split_table_rows},
                           {"recipe", s.recipe}}
                          .dump());
  }

  int64_t split_table_rows() const {
    if (split_table.empty()) return 0;
    if (split_table == "auto") return kSplitRowsByBudget;
    int64_t rows = 0;
    const auto [end, error] = std::from_chars(split_table.data(), split_table.data() + split_table.size(), rows);
    require(error == std::errc() && end == split_table.data() + split_table.size() && rows > 0, ErrorCode::kInvalidArgument,
            "--split-table takes a row count or auto, not \"" + split_table + "\"");
    return rows;
  }

  void run_gguf() {
    require(method == "rtn" && calibrate.empty() && bits == 0 && distill.steps == 0 && split_table.empty(), ErrorCode::kInvalidArgument,
            "--to gguf writes GGUF's own types by plain rounding; --method, --calibrate, --bits, --split-table and --distill-steps "
            "apply to --to hearth");
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

CommandRegistration quantize_command("quantize", [](CLI::App& app) {
  auto cmd = std::make_shared<QuantizeCommand>();
  CLI::App* sub = app.add_subcommand("quantize", "write a quantized model folder (nf4, nf4-32, int4 or int8; rtn, hqq, awq, gptq)");
  sub->add_option("--model", cmd->model, "Hugging Face folder or llama2.c model")->required();
  sub->add_option("--tokenizer", cmd->tokenizer, "tokenizer file (default: found beside the model)");
  sub->add_option("--format", cmd->format, "nf4 (QLoRA, double-quantized, blocks of 64), nf4-32 (the same, blocks of 32), int4 (groups of 32) or int8")->capture_default_str();
  auto* embeddings = sub->add_option("--embeddings", cmd->embeddings,
                                     "embedding table and output head: int8, nf4, nf4-32, int4 or bf16 (with --bits and not given: "
                                     "chosen by the budget)")
                         ->capture_default_str();
  sub->add_option("--method", cmd->method,
                  "rtn (round to nearest), hqq (data-free scale refinement), awq (activation-aware scaling), gptq "
                  "(error-compensating rounding) or awq-gptq; awq and gptq need --calibrate")
      ->capture_default_str();
  sub->add_option("--calibrate", cmd->calibrate, "calibration text files or folders (not your evaluation text)");
  sub->add_option("--calib-tokens", cmd->calib_tokens, "calibration tokens to use at most")->capture_default_str();
  sub->add_option("--bits", cmd->bits,
                  "average bits per weight over every quantized matrix, scales included: keeps the most sensitive "
                  "matrices at int8 within it (mixed precision)");
  sub->add_option("--split-table", cmd->split_table,
                  "store the table's rows of the tokens most frequent in the --calibrate text at int8 and the others in "
                  "--embeddings (or --format): a row count, or auto for as many as --bits leaves once every projection "
                  "is in --format");
  sub->add_option("--propagate", cmd->propagate,
                  "what each block is calibrated on: quantized (the blocks before it quantized), fp (the full-precision "
                  "model's activations) or auto (fp with --distill-steps, else quantized)")
      ->capture_default_str();
  sub->add_option("--distill-steps", cmd->distill.steps,
                  "first tune the weights for 4-bit rounding by distillation from the full-precision model on the "
                  "--calibrate text, this many updates (small models: about 16 bytes per parameter)")
      ->capture_default_str();
  sub->add_option("--distill-lr", cmd->distill.lr, "peak learning rate of the distillation")->capture_default_str();
  sub->add_option("--distill-batch", cmd->distill.batch, "calibration windows per distillation update")->capture_default_str();
  sub->add_option("--distill-seed", cmd->distill.seed, "which calibration windows each distillation update sees")->capture_default_str();
  sub->add_option("--distill-average", cmd->distill.average,
                  "the share of the last distillation updates whose weights are averaged (0: the last update's)")
      ->capture_default_str();
  sub->add_option("--out", cmd->out, "output folder (or .gguf file with --to gguf)")->required();
  sub->add_option("--to", cmd->to, "hearth (a quantized folder) or gguf (a GGUF file; --format q8_0|q4_0|q4_1|q4_k|q5_k|q6_k|f16|bf16|f32)")
      ->capture_default_str();
  sub->callback([cmd, embeddings] {
    cmd->embeddings_given = embeddings->count() > 0;
    cmd->run();
  });
});

}  // namespace
}  // namespace hearth::cli
