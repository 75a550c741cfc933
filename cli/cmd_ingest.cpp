// `hearth ingest --user U FILE...`: text and Markdown become documents, chat and
// prompt/completion JSONL become examples; redacted, sealed, all in one transaction.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "core/json.h"
#include "engine/engine.h"
#include "privacy/sandbox.h"
#include "storage/ingest.h"

namespace hearth::cli {
namespace {

struct IngestArgs {
  std::string user;
  std::string redact;
  std::string key_file;
  bool sandbox = false;
  std::vector<std::string> files;
};

Json counts_json(const privacy::RedactionCounts& counts) {
  Json j = Json::object();
  for (size_t k = 0; k < privacy::kPiiKinds; ++k) j[privacy::pii_kind_name(static_cast<privacy::PiiKind>(k))] = counts.found[k];
  return j;
}

void run_ingest(const IngestArgs& args) {
  std::optional<privacy::RedactionMode> redaction;
  if (!args.redact.empty()) redaction = privacy::parse_redaction_mode(args.redact);
  std::vector<std::filesystem::path> files(args.files.begin(), args.files.end());
  storage::check_ingest_files(files);  // refused before the home and its database are created
  // The sandbox closes once the database is open; no input has been read yet.
  engine::Engine e(engine_options(args.key_file, /*with_key=*/true, args.sandbox));
  storage::IngestReport r = e.ingest_files(args.user, files, redaction);
  std::printf("ingested %zu file(s) for user \"%s\"%s: %zu document(s), %zu example(s) added; %zu duplicate(s), "
              "%zu dropped, %zu PII finding(s) (redaction %s)\n",
              r.files, args.user.c_str(), r.user_created ? " (new user)" : "", r.documents_added, r.examples_added,
              r.duplicates, r.dropped, r.redactions.total(), privacy::redaction_mode_name(r.redaction));
  Json result{{"user", args.user},
              {"user_id", r.user_id},
              {"user_created", r.user_created},
              {"files", r.files},
              {"documents_added", r.documents_added},
              {"examples_added", r.examples_added},
              {"duplicates", r.duplicates},
              {"dropped", r.dropped},
              {"empty", r.empty},
              {"redaction", privacy::redaction_mode_name(r.redaction)},
              {"pii_found", counts_json(r.redactions)},
              {"sandbox", privacy::in_no_network_sandbox()},
              {"sockets_blocked", privacy::in_no_network_sandbox() && privacy::socket_creation_blocked()}};
  print_json_result(result.dump());
}

const CommandRegistration ingest_command("ingest", [](CLI::App& app) {
  auto args = std::make_shared<IngestArgs>();
  CLI::App* cmd = app.add_subcommand("ingest", "store text, Markdown and JSONL files for a user, redacted and encrypted");
  cmd->add_option("--user", args->user, "whose data this is")->required();
  cmd->add_option("--redact", args->redact, "PII redaction for this user: off, mask (default for new users) or drop")
      ->check(CLI::IsMember({"off", "mask", "drop"}));
  cmd->add_option("--key-file", args->key_file, "unlock with this key file (mode 600) instead of a passphrase");
  cmd->add_flag("--sandbox", args->sandbox, "run with socket creation forbidden (seccomp)");
  cmd->add_option("files", args->files, ".txt/.md documents, .jsonl chat or prompt/completion examples")->required();
  cmd->callback([args] { run_ingest(*args); });
});

}  // namespace
}  // namespace hearth::cli
