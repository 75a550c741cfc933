// `hearth ppl`: perplexity of a model on a text file by the project's protocol
// (inference/perplexity.h).
#include <cstdio>

#include "cli/command.h"
#include "cli/model_options.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "inference/perplexity.h"

namespace hearth::cli {
namespace {

struct PplCommand {
  ModelOptions model;
  std::string data;
  int64_t ctx = 256;

  void run() {
    LoadedModel m = model.load();
    const std::string text = read_file(data, size_t(1) << 30);
    std::vector<int32_t> stream = perplexity_token_stream(*m.tokenizer, text);
    PerplexityResult r = evaluate_perplexity(*m.decoder, stream, ctx);
    std::printf("tokens scored: %lld\nperplexity: %.4f\n", static_cast<long long>(r.tokens_scored), r.perplexity);
    print_json_result(Json{{"ppl", r.perplexity}, {"tokens", r.tokens_scored}, {"windows", r.windows}, {"ctx", ctx}}.dump());
  }
};

CommandRegistration ppl_command("ppl", [](CLI::App& app) {
  auto cmd = std::make_shared<PplCommand>();
  CLI::App* sub = app.add_subcommand("ppl", "perplexity of a model on a text file");
  cmd->model.add_to(*sub);
  sub->add_option("--data", cmd->data, "text file")->required();
  sub->add_option("--ctx", cmd->ctx, "tokens of context per window")->capture_default_str();
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
