// `hearth generate`: streams a model's continuation of a prompt (or a chat turn) to stdout,
// optionally through an adapter from a user's vault (--user, decrypted in memory only) and
// inside the no-network sandbox (--sandbox).
#include <spdlog/spdlog.h>

#include <cstdio>
#include <tuple>

#include "cli/command.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "cli/engine_options.h"
#include "engine/engine.h"
#include "inference/generator.h"
#include "privacy/sandbox.h"

namespace hearth::cli {
namespace {

// --adapter under --user: a registry id (digits) or a name (its serving version).
std::pair<std::string, int64_t> user_adapter(engine::Engine& e, const std::string& user, const std::string& which) {
  if (!which.empty() && which.find_first_not_of("0123456789") == std::string::npos) {
    for (const storage::AdapterRecord& a : e.adapter_versions(user))
      if (std::to_string(a.id) == which) return {a.name, a.version};
    fail(ErrorCode::kNotFound, "user \"" + user + "\" has no adapter with id " + which);
  }
  return {which, 0};
}

struct GenerateCommand {
  ModelOptions model;
  std::string prompt;
  std::string system;
  bool chat = false;
  GenerationOptions generation;
  std::string user, key_file;
  bool sandbox = false;

  void run() {
    generation.sampling.validate();  // before the model loads: bad options fail fast
    require(user.empty() || !model.adapter.empty(), ErrorCode::kInvalidArgument,
            "--user needs --adapter NAME or ID (an adapter from the user's registry)");
    const bool json = global_options().json;
    auto stream = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    GenerationResult r;
    if (user.empty()) {
      LoadedModel m = model.load();
      if (sandbox) privacy::enter_no_network_sandbox();
      r = generate(*m.decoder, *m.tokenizer, prompt_ids(*m.tokenizer), generation, stream);
    } else {
      // Through the engine: the adapter is decrypted in memory only, after the sandbox is on.
      engine::Engine e(engine_options(key_file, /*with_key=*/true, sandbox));
      e.load_base(model.base_spec());
      engine::GenerateRequest request;
      request.prompt = prompt;
      request.chat = chat;
      request.system = system;
      request.options = generation;
      request.user = user;
      std::tie(request.adapter, request.version) = user_adapter(e, user, model.adapter);
      r = e.generate(request, stream);
    }
    if (!r.text.empty() && r.text.back() != '\n') std::fputc('\n', stdout);
    Json result = {{"text", r.text},
                   {"tokens", r.tokens.size()},
                   {"token_ids", r.tokens},
                   {"prompt_tokens", r.prompt_tokens},
                   {"tokens_per_s", r.decode_tokens_per_second()},
                   {"prefill_tokens_per_s", r.prefill_tokens_per_second()},
                   {"stop_reason", r.stop_reason},
                   {"sandbox", privacy::in_no_network_sandbox()},
                   {"sockets_blocked", privacy::in_no_network_sandbox() && privacy::socket_creation_blocked()}};
    if (json) print_json_result(result.dump(-1, ' ', false, Json::error_handler_t::replace));
  }

  std::vector<int32_t> prompt_ids(const Tokenizer& tok) const {
    if (!chat) return tok.encode(prompt, /*add_bos=*/true);
    const ChatTemplate* tmpl = tok.chat_template();
    require(tmpl != nullptr, ErrorCode::kInvalidArgument, "--chat: this model's tokenizer has no chat template");
    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", prompt});
    return tok.encode(tmpl->render(messages, /*add_generation_prompt=*/true), /*add_bos=*/false);
  }
};

CommandRegistration registration("generate", [](CLI::App& app) {
  auto cmd = std::make_shared<GenerateCommand>();
  CLI::App* sub = app.add_subcommand("generate", "stream a model's continuation of a prompt");
  cmd->model.add_to(*sub);
  sub->add_option("--user", cmd->user, "take --adapter (a name or id) from this user's vault, decrypted in memory");
  sub->add_option("--key-file", cmd->key_file, "with --user: unlock with this key file (mode 600) instead of a passphrase");
  sub->add_flag("--sandbox", cmd->sandbox, "run with socket creation forbidden (seccomp)");
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
