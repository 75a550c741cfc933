// `hearth data list|show|delete`: what Hearth stores for a user. list needs no key (it shows
// sizes and dates, never content); show decrypts one record; delete removes records.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/engine.h"
#include "privacy/redactor.h"

namespace hearth::cli {
namespace {

struct DataArgs {
  std::string user;
  std::string kind = "document";
  std::vector<int64_t> ids;
  std::string key_file;
  bool sandbox = false;
};

void list_users(engine::Engine& e) {
  Json users = Json::array();
  for (const storage::UserRecord& u : e.users()) {
    const int64_t docs = e.count_data(u.name, storage::RecordKind::kDocument);
    const int64_t ex = e.count_data(u.name, storage::RecordKind::kExample);
    std::printf("%-24s  %6lld document(s)  %6lld example(s)  redaction %s\n", u.name.c_str(),
                static_cast<long long>(docs), static_cast<long long>(ex), privacy::redaction_mode_name(u.redaction));
    users.push_back(Json{{"user", u.name}, {"documents", docs}, {"examples", ex},
                         {"redaction", privacy::redaction_mode_name(u.redaction)}});
  }
  print_json_result(Json{{"users", users}}.dump());
}

// Needs no key: sizes and dates, never content.
void run_list(const DataArgs& args) {
  engine::Engine e(engine_options("", /*with_key=*/false, args.sandbox));
  if (args.user.empty()) return list_users(e);
  Json rows = Json::array();
  for (const storage::RecordInfo& r : e.list_data(args.user)) {
    std::printf("%-8s %6lld  %-10s %8lld bytes  created %lld\n", storage::record_kind_name(r.kind),
                static_cast<long long>(r.id), r.format.c_str(), static_cast<long long>(r.bytes),
                static_cast<long long>(r.created));
    rows.push_back(Json{{"kind", storage::record_kind_name(r.kind)}, {"id", r.id}, {"format", r.format},
                        {"bytes", r.bytes}, {"created", r.created}});
  }
  Json adapters = Json::array();
  for (const storage::AdapterRecord& a : e.adapter_versions(args.user)) {
    std::printf("adapter  %6lld  %s v%lld  %s rank %lld  created %lld\n", static_cast<long long>(a.id), a.name.c_str(),
                static_cast<long long>(a.version), a.method.c_str(), static_cast<long long>(a.rank),
                static_cast<long long>(a.created));
    adapters.push_back(Json{{"id", a.id}, {"name", a.name}, {"version", a.version}, {"method", a.method},
                            {"rank", a.rank}, {"base_fingerprint", a.base_fingerprint}, {"created", a.created}});
  }
  print_json_result(Json{{"user", args.user}, {"records", rows}, {"adapters", adapters}}.dump());
}

void run_show(const DataArgs& args) {
  require(!args.ids.empty(), ErrorCode::kInvalidArgument, "give the record to show with --id");
  engine::Engine e(engine_options(args.key_file, /*with_key=*/true, args.sandbox));
  const storage::RecordKind kind = storage::parse_record_kind(args.kind);
  Json shown = Json::array();
  for (int64_t id : args.ids) {
    if (kind == storage::RecordKind::kDocument) {
      const std::string text = e.show_document(args.user, id);
      std::printf("%s\n", text.c_str());
      shown.push_back(Json{{"id", id}, {"text", text}});
    } else {
      const std::string json = storage::canonical_example_json(e.show_example(args.user, id));
      std::printf("%s\n", json.c_str());
      shown.push_back(Json{{"id", id}, {"example", parse_json(json, "example")}});
    }
  }
  print_json_result(Json{{"user", args.user}, {"kind", args.kind}, {"records", shown}}.dump());
}

// Needs no key. Asks first on a terminal (--yes confirms).
void run_delete(const DataArgs& args) {
  require(!args.ids.empty(), ErrorCode::kInvalidArgument, "give the records to delete with --id");
  engine::Engine e(engine_options("", /*with_key=*/false, args.sandbox));
  const storage::RecordKind kind = storage::parse_record_kind(args.kind);
  if (!confirm("Delete " + std::to_string(args.ids.size()) + " " + storage::record_kind_name(kind) + "(s) of user \"" +
               args.user + "\"?"))
    fail(ErrorCode::kCancelled, "not confirmed; nothing was deleted");
  e.delete_data(args.user, kind, args.ids);
  std::printf("deleted %zu %s(s) of user \"%s\"\n", args.ids.size(), storage::record_kind_name(kind), args.user.c_str());
  print_json_result(Json{{"user", args.user}, {"kind", storage::record_kind_name(kind)}, {"deleted", args.ids}}.dump());
}

CLI::App* add_common(CLI::App* cmd, DataArgs& args, bool user_required) {
  auto* user = cmd->add_option("--user", args.user, "whose data");
  if (user_required) user->required();
  cmd->add_flag("--sandbox", args.sandbox, "run with socket creation forbidden (seccomp)");
  return cmd;
}

const CommandRegistration data_command("data", [](CLI::App& app) {
  auto args = std::make_shared<DataArgs>();
  CLI::App* data = app.add_subcommand("data", "list, show or delete a user's stored documents and examples");
  data->require_subcommand(1);
  CLI::App* list = add_common(data->add_subcommand("list", "list users, or one user's records (no content)"), *args, false);
  list->callback([args] { run_list(*args); });
  CLI::App* show = add_common(data->add_subcommand("show", "decrypt and print records"), *args, true);
  show->add_option("--kind", args->kind, "document or example")->check(CLI::IsMember({"document", "example"}));
  show->add_option("--id", args->ids, "record id(s)")->required();
  show->add_option("--key-file", args->key_file, "unlock with this key file instead of a passphrase");
  show->callback([args] { run_show(*args); });
  CLI::App* del = add_common(data->add_subcommand("delete", "delete records (all or none; asks first, --yes)"), *args, true);
  del->add_option("--kind", args->kind, "document or example")->check(CLI::IsMember({"document", "example"}));
  del->add_option("--id", args->ids, "record id(s)")->required();
  del->callback([args] { run_delete(*args); });
});

}  // namespace
}  // namespace hearth::cli
