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
#include "adapters/adapter_set.h"
#include "cli/engine_options.h"
#include "core/atomic_file.h"
#include "engine/engine.h"
#include "engine/test_time_training.h"
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
  engine::TttSettings ttt;
  std::string context_file, ttt_targets;

  // Test-time training: a short-lived adapter learns the --context text (starting from the
  // user's adapter, if one is applied) and is attached in its place for this generation.
  std::optional<engine::TttReport> train_on_context_file(LoadedModel& m, const std::shared_ptr<Adapter>& init) {
    if (!ttt.enabled()) return std::nullopt;
    const std::string text = read_file(context_file, size_t(256) << 20);
    engine::TttReport report;
    auto trained = engine::train_on_context(*m.decoder, m.tokenizer->encode(text, /*add_bos=*/true), ttt, init, &report);
    attach_adapter(*m.decoder, trained);
    spdlog::info("test-time training: {} steps over {} context tokens in {:.2f} s, loss {:.3f} -> {:.3f}", report.steps,
                 report.context_tokens, report.seconds, report.first_loss, report.last_loss);
    return report;
  }

  void run() {
    generation.sampling.validate();  // before the model loads: bad options fail fast
    if (!ttt_targets.empty()) ttt.targets = AdapterConfig::parse_targets(ttt_targets);
    ttt.validate();
    require(!ttt.enabled() || !context_file.empty(), ErrorCode::kInvalidArgument,
            "--ttt-steps needs --context FILE: the text the short-lived adapter learns from");
    require(context_file.empty() || ttt.enabled(), ErrorCode::kInvalidArgument,
            "--context is the text test-time training learns from; give --ttt-steps K too");
    require(!ttt.enabled() || model.adapter.empty() || !user.empty(), ErrorCode::kInvalidArgument,
            "--ttt-steps starts from a user's adapter (--user U --adapter NAME) or a fresh one; "
            "an --adapter folder is not supported with it");
    require(context_file.empty() || std::filesystem::is_regular_file(context_file), ErrorCode::kNotFound,
            "context file \"" + context_file + "\" does not exist or is not a file");
    require(user.empty() || !model.adapter.empty(), ErrorCode::kInvalidArgument,
            "--user needs --adapter NAME or ID (an adapter from the user's registry)");
    const bool json = global_options().json;
    auto stream = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    GenerationResult r;
    std::optional<engine::TttReport> ttt_report;
    if (user.empty()) {
      LoadedModel m = model.load();
      if (sandbox) privacy::enter_no_network_sandbox();
      ttt_report = train_on_context_file(m, nullptr);
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
      engine::TttReport report;
      if (ttt.enabled()) {
        request.ttt = ttt;
        request.context = read_file(context_file, size_t(256) << 20);
        request.ttt_report = &report;
      }
      r = e.generate(request, stream);
      if (ttt.enabled()) ttt_report = report;
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
    if (ttt_report) result["ttt"] = ttt_report->to_json();
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

CommandRegistration generate_command("generate", [](CLI::App& app) {
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
  sub->add_option("--context", cmd->context_file, "with --ttt-steps: a text file the short-lived adapter learns from");
  auto& t = cmd->ttt;
  sub->add_option("--ttt-steps", t.steps, "test-time training: optimizer steps on --context (one chunk each); 0 = off")
      ->capture_default_str();
  sub->add_option("--ttt-lr", t.lr, "test-time training: learning rate (AdamW)")->capture_default_str();
  sub->add_option("--ttt-user-lr-factor", t.user_lr_factor,
                  "test-time training over --adapter: the delta's learning rate is --ttt-lr times this")
      ->capture_default_str();
  sub->add_option("--ttt-rank", t.rank, "test-time training: rank of a fresh adapter")->capture_default_str();
  sub->add_option("--ttt-chunk", t.chunk_tokens, "test-time training: context tokens per step")->capture_default_str();
  sub->add_option("--ttt-targets", cmd->ttt_targets, "test-time training: projections to adapt (q,k,v,o,gate,up,down or all)");
  sub->add_option("--ttt-max-seconds", t.max_seconds, "test-time training: wall-time limit; 0 = none")->capture_default_str();
  sub->add_option("--ttt-max-memory-mb", t.max_memory_mb, "test-time training: memory ceiling (estimated); 0 = none")
      ->capture_default_str();
  sub->add_flag("--ignore-stop", [cmd](int64_t) { cmd->generation.stop_at_stop_tokens = false; }, "do not stop at stop tokens");
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
