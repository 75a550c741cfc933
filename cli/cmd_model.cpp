// `hearth model convert|init|info`: write Hugging Face folders from llama2.c files or as
// seeded random models (real checkpoint shapes, or a custom Llama to pretrain), and describe a model.
#include <cstdio>

#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"

namespace hearth::cli {
namespace {

struct ModelCommands {
  std::string in, out, tokenizer, arch;
  uint64_t seed = 0;
  CustomModelShape shape;  // --arch custom
  std::string tokenizer_from;
  ModelOptions info;
};

Json describe(const LoadedModel& m) {
  const ModelConfig& c = m.decoder->config();
  return {{"architecture", c.architecture_name()}, {"format", m.format},       {"parameters", c.parameter_count()},
          {"layers", c.num_layers},                {"hidden", c.hidden_size},  {"heads", c.num_heads},
          {"kv_heads", c.num_kv_heads},            {"vocab", c.vocab_size},    {"weight_bytes", m.decoder->weight_bytes()},
          {"fingerprint", m.fingerprint}};
}

CommandRegistration model_command("model", [](CLI::App& app) {
  auto cmd = std::make_shared<ModelCommands>();
  CLI::App* model = app.add_subcommand("model", "convert, create and inspect model folders");
  model->require_subcommand(1);

  CLI::App* convert = model->add_subcommand("convert", "write a llama2.c model as a Hugging Face folder");
  convert->add_option("--in", cmd->in, "llama2.c file, or folder with one and its tokenizer")->required();
  convert->add_option("--out", cmd->out, "output folder")->required();
  convert->add_option("--tokenizer", cmd->tokenizer, "llama2.c tokenizer (default: found beside the model)");
  convert->callback([cmd] {
    convert_llama2c_to_hf(cmd->in, cmd->out, cmd->tokenizer);
    std::printf("wrote %s\n", cmd->out.c_str());
    print_json_result(Json{{"out", cmd->out}}.dump());
  });

  CLI::App* init = model->add_subcommand("init", "write a seeded random model: a real checkpoint's shapes, or a custom Llama");
  init->add_option("--arch", cmd->arch, "smollm2-135m | qwen2.5-0.5b | llama3.2-1b | qwen3-0.6b | gemma3-270m | gemma3-1b | phi-4-mini | tiny | tiny-qwen3 | tiny-gemma3 | tiny-phi3 | custom")->required();
  init->add_option("--seed", cmd->seed, "seed of the random weights")->capture_default_str();
  init->add_option("--out", cmd->out, "output folder")->required();
  init->add_option("--layers", cmd->shape.layers, "custom: decoder layers")->capture_default_str();
  init->add_option("--hidden", cmd->shape.hidden, "custom: hidden size")->capture_default_str();
  init->add_option("--heads", cmd->shape.heads, "custom: attention heads")->capture_default_str();
  init->add_option("--kv-heads", cmd->shape.kv_heads, "custom: key/value heads")->capture_default_str();
  init->add_option("--intermediate", cmd->shape.intermediate, "custom: MLP size")->capture_default_str();
  init->add_option("--max-positions", cmd->shape.max_positions, "custom: longest sequence")->capture_default_str();
  init->add_option("--tokenizer-from", cmd->tokenizer_from, "custom: model folder or tokenizer file whose tokenizer (and vocabulary size) to use");
  init->callback([cmd] {
    ModelConfig c;
    if (cmd->arch == "custom") {
      require(!cmd->tokenizer_from.empty(), ErrorCode::kInvalidArgument, "--arch custom needs --tokenizer-from MODEL_OR_TOKENIZER");
      init_custom_model(cmd->shape, cmd->tokenizer_from, cmd->seed, cmd->out);
      c = open_model_source(cmd->out).config;
    } else {
      require(cmd->tokenizer_from.empty(), ErrorCode::kInvalidArgument, "--tokenizer-from applies to --arch custom only");
      init_random_model(cmd->arch, cmd->seed, cmd->out);
      c = preset_config(cmd->arch);
    }
    std::printf("wrote %s: %s shape, %.3fM parameters\n", cmd->out.c_str(), cmd->arch.c_str(), c.parameter_count() / 1e6);
    print_json_result(Json{{"out", cmd->out}, {"arch", cmd->arch}, {"parameters", c.parameter_count()}, {"layers", c.num_layers},
                           {"hidden", c.hidden_size}, {"heads", c.num_heads}, {"kv_heads", c.num_kv_heads},
                           {"intermediate", c.intermediate_size}, {"vocab", c.vocab_size}}
                          .dump());
  });

  CLI::App* info = model->add_subcommand("info", "load a model and describe it");
  cmd->info.add_to(*info);
  info->callback([cmd] {
    LoadedModel m = cmd->info.load();
    Json d = describe(m);
    std::printf("%s\n", d.dump(2).c_str());
    print_json_result(d.dump());
  });
});

}  // namespace
}  // namespace hearth::cli
