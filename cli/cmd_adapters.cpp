// `hearth adapters merge|info`: fold a PEFT-layout adapter into its base as a full-precision
// Hugging Face folder (with the error re-quantizing it would cost), and describe an adapter folder.
#include <cstdio>
#include <sstream>

#include "adapters/merge.h"
#include "adapters/peft_files.h"
#include "cli/command.h"
#include "cli/model_options.h"
#include "core/json.h"

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

std::vector<QuantFormat> parse_formats(const std::vector<std::string>& names) {
  std::vector<QuantFormat> out;
  for (const std::string& list : names) {
    std::stringstream in(list);
    std::string name;
    while (std::getline(in, name, ','))
      if (!name.empty()) out.push_back(parse_quant_format(name));
  }
  return out;
}

Json config_json(const AdapterConfig& c) {
  return {{"method", adapter_method_name(c.method)}, {"rank", c.rank},        {"alpha", c.alpha},
          {"scale", c.scale()},                       {"rslora", c.rslora},     {"dropout", c.dropout},
          {"targets", c.targets},                     {"first_layer", c.first_layer}, {"last_layer", c.last_layer}};
}

struct AdaptersCommands {
  ModelOptions model;
  std::string adapter, out, out_dtype = "fp32";
  std::vector<std::string> requantize;

  void merge() {
    const std::vector<QuantFormat> formats = parse_formats(requantize);
    const at::ScalarType dtype = parse_compute_dtype(out_dtype);
    LoadedModel m = model.load();
    auto a = load_peft_adapter(adapter, *m.decoder, m.fingerprint);
    const MergeReport r = merge_adapter_to_folder(*m.decoder, *a, out, tokenizer_files(model), dtype, formats);
    std::printf("merged %lld adapted projections into %s (%s, %lld tensors)\n",
                static_cast<long long>(r.merged_modules), out.c_str(), out_dtype.c_str(),
                static_cast<long long>(r.tensors_written));
    Json requant = Json::object();
    for (const RequantizationError& e : r.requantization) {
      std::printf("re-quantizing to %s: relative Frobenius error of the merged projection weights %.5f "
                  "(weight-space error, not perplexity; the folder written is full precision)\n",
                  quant_format_name(e.format), e.relative_frobenius_error);
      requant[quant_format_name(e.format)] = e.relative_frobenius_error;
    }
    print_json_result(Json{{"out", out}, {"merged_modules", r.merged_modules}, {"dtype", out_dtype},
                           {"requantization_relative_frobenius_error", requant}}
                          .dump());
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

CommandRegistration registration("adapters", [](CLI::App& app) {
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
                    "report the weight error of re-quantizing the merged model: nf4, int4, int8 (comma list)");
  merge->callback([cmd] { cmd->merge(); });

  CLI::App* info = adapters->add_subcommand("info", "describe an adapter folder");
  info->add_option("--adapter", cmd->adapter, "PEFT adapter folder")->required();
  info->callback([cmd] { cmd->info(); });
});

}  // namespace
}  // namespace hearth::cli
