// `hearth generate`: streams a model's continuation of a prompt (or a chat turn) to stdout.
#include <cstdio>

#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "inference/generator.h"

namespace hearth::cli {
namespace {

struct GenerateCommand {
  ModelOptions model;
  std::string prompt;
  std::string system;
  bool chat = false;
  GenerationOptions generation;

  void run() {
    generation.sampling.validate();  // before the model loads: bad options fail fast
    LoadedModel m = model.load();
    std::vector<int32_t> ids;
    if (chat) {
      const ChatTemplate* tmpl = m.tokenizer->chat_template();
      require(tmpl != nullptr, ErrorCode::kInvalidArgument, "--chat: this model's tokenizer has no chat template");
      std::vector<ChatMessage> messages;
      if (!system.empty()) messages.push_back({"system", system});
      messages.push_back({"user", prompt});
      ids = m.tokenizer->encode(tmpl->render(messages, /*add_generation_prompt=*/true), /*add_bos=*/false);
    } else {
      ids = m.tokenizer->encode(prompt, /*add_bos=*/true);
    }
    const bool json = global_options().json;
    GenerationResult r = generate(*m.decoder, *m.tokenizer, ids, generation, [&](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    });
    if (!r.text.empty() && r.text.back() != '\n') std::fputc('\n', stdout);
    Json result = {{"text", r.text},
                   {"tokens", r.tokens.size()},
                   {"prompt_tokens", r.prompt_tokens},
                   {"tokens_per_s", r.decode_tokens_per_second()},
                   {"prefill_tokens_per_s", r.prefill_tokens_per_second()},
                   {"stop_reason", r.stop_reason}};
    if (json) print_json_result(result.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
};

CommandRegistration registration("generate", [](CLI::App& app) {
  auto cmd = std::make_shared<GenerateCommand>();
  CLI::App* sub = app.add_subcommand("generate", "stream a model's continuation of a prompt");
  cmd->model.add_to(*sub);
  sub->add_option("--prompt", cmd->prompt, "prompt text (default: empty, i.e. start from BOS)");
  sub->add_flag("--chat", cmd->chat, "wrap the prompt as a user turn with the model's chat template");
  sub->add_option("--system", cmd->system, "with --chat: a system message");
  auto& g = cmd->generation;
  sub->add_option("--max-tokens", g.max_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("--temperature", g.sampling.temperature, "sampling temperature; 0 = greedy")->capture_default_str();
  sub->add_option("--top-k", g.sampling.top_k, "keep the k most likely tokens; 0 = all")->capture_default_str();
  sub->add_option("--top-p", g.sampling.top_p, "keep the smallest set with this probability mass")->capture_default_str();
  sub->add_option("--repeat-penalty", g.sampling.repeat_penalty, "penalty for recently seen tokens; 1 = off")->capture_default_str();
  sub->add_option("--seed", g.sampling.seed, "sampling seed")->capture_default_str();
  sub->add_flag("--ignore-stop", [cmd](int64_t) { cmd->generation.stop_at_stop_tokens = false; }, "do not stop at stop tokens");
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
