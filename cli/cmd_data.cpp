// `hearth data list|show|delete`: what Hearth stores for a user. list needs no key (it shows
// sizes and dates, never content); show decrypts one record; delete removes records.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "core/json.h"
#include "privacy/passphrase_prompt.h"
#include "privacy/sandbox.h"
#include "storage/adapter_registry.h"
#include "storage/audit_log.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/record_store.h"
#include "storage/user_store.h"
#include "storage/vault.h"

namespace hearth::cli {
namespace {

struct DataArgs {
  std::string home;
  std::string user;
  std::string kind = "document";
  std::vector<int64_t> ids;
  std::string key_file;
  bool sandbox = false;
};

// list and delete need no key: a keyring over a key nobody can use is never consulted.
struct KeylessStores {
  explicit KeylessStores(const std::string& home)
      : db(storage::existing_database(storage::resolve_home(home))), keyring(db, privacy::SecretKey()) {}
  storage::Database db;
  storage::Keyring keyring;
};

void list_users(storage::Database& db, storage::Keyring& keyring) {
  Json users = Json::array();
  storage::RecordStore records(db, keyring);
  for (const storage::UserRecord& u : storage::UserStore(db).list()) {
    int64_t docs = records.count(u.id, storage::RecordKind::kDocument);
    int64_t ex = records.count(u.id, storage::RecordKind::kExample);
    std::printf("%-24s  %6lld document(s)  %6lld example(s)  redaction %s\n", u.name.c_str(),
                static_cast<long long>(docs), static_cast<long long>(ex), privacy::redaction_mode_name(u.redaction));
    users.push_back(Json{{"user", u.name}, {"documents", docs}, {"examples", ex},
                         {"redaction", privacy::redaction_mode_name(u.redaction)}});
  }
  print_json_result(Json{{"users", users}}.dump());
}

void run_list(const DataArgs& args) {
  if (args.sandbox) privacy::enter_no_network_sandbox();
  KeylessStores s(args.home);
  if (args.user.empty()) return list_users(s.db, s.keyring);
  storage::UserRecord user = storage::UserStore(s.db).get(args.user);
  Json rows = Json::array();
  for (const storage::RecordInfo& r : storage::RecordStore(s.db, s.keyring).list(user.id)) {
    std::printf("%-8s %6lld  %-10s %8lld bytes  created %lld\n", storage::record_kind_name(r.kind),
                static_cast<long long>(r.id), r.format.c_str(), static_cast<long long>(r.bytes),
                static_cast<long long>(r.created));
    rows.push_back(Json{{"kind", storage::record_kind_name(r.kind)}, {"id", r.id}, {"format", r.format},
                        {"bytes", r.bytes}, {"created", r.created}});
  }
  Json adapters = Json::array();
  for (const storage::AdapterRecord& a : storage::AdapterRegistry(s.db, s.keyring, "").list(user.id)) {
    std::printf("adapter  %6lld  %s v%lld  %s rank %lld  created %lld\n", static_cast<long long>(a.id), a.name.c_str(),
                static_cast<long long>(a.version), a.method.c_str(), static_cast<long long>(a.rank),
                static_cast<long long>(a.created));
    adapters.push_back(Json{{"id", a.id}, {"name", a.name}, {"version", a.version}, {"method", a.method},
                            {"rank", a.rank}, {"base_fingerprint", a.base_fingerprint}, {"created", a.created}});
  }
  print_json_result(Json{{"user", args.user}, {"records", rows}, {"adapters", adapters}}.dump());
}

void run_show(const DataArgs& args) {
  if (args.sandbox) privacy::enter_no_network_sandbox();
  require(!args.ids.empty(), ErrorCode::kInvalidArgument, "give the record to show with --id");
  storage::Vault vault(storage::resolve_home(args.home), privacy::master_key_source_for_cli(args.key_file));
  storage::UserRecord user = storage::UserStore(vault.db()).get(args.user);
  storage::RecordStore records(vault.db(), vault.keyring());
  storage::RecordKind kind = storage::parse_record_kind(args.kind);
  Json shown = Json::array();
  for (int64_t id : args.ids) {
    if (kind == storage::RecordKind::kDocument) {
      std::string text = records.open_document(user.id, id);
      std::printf("%s\n", text.c_str());
      shown.push_back(Json{{"id", id}, {"text", text}, {"source", records.open_document_source(user.id, id)}});
    } else {
      std::string json = storage::canonical_example_json(records.open_example(user.id, id));
      std::printf("%s\n", json.c_str());
      shown.push_back(Json{{"id", id}, {"example", parse_json(json, "example")}});
    }
  }
  storage::AuditLog(vault.db()).append(storage::current_os_actor(), "show", user.id, static_cast<int64_t>(args.ids.size()));
  print_json_result(Json{{"user", args.user}, {"kind", args.kind}, {"records", shown}}.dump());
}

void run_delete(const DataArgs& args) {
  if (args.sandbox) privacy::enter_no_network_sandbox();
  require(!args.ids.empty(), ErrorCode::kInvalidArgument, "give the records to delete with --id");
  KeylessStores s(args.home);
  storage::RecordKind kind = storage::parse_record_kind(args.kind);
  storage::Transaction tx(s.db);
  storage::UserRecord user = storage::UserStore(s.db).get(args.user);
  storage::RecordStore records(s.db, s.keyring);
  for (int64_t id : args.ids) {
    require(records.remove(user.id, kind, id), ErrorCode::kNotFound,
            std::string(storage::record_kind_name(kind)) + " " + std::to_string(id) + " of user \"" + args.user +
                "\" does not exist; nothing was deleted");
  }
  storage::AuditLog(s.db).append(storage::current_os_actor(), "delete", user.id, static_cast<int64_t>(args.ids.size()),
                                 std::string("kind=") + storage::record_kind_name(kind));
  tx.commit();
  storage::back_up_after_job(s.db);  // the backup no longer holds the deleted records
  std::printf("deleted %zu %s(s) of user \"%s\"\n", args.ids.size(), storage::record_kind_name(kind), args.user.c_str());
  print_json_result(Json{{"user", args.user}, {"kind", storage::record_kind_name(kind)}, {"deleted", args.ids}}.dump());
}

CLI::App* add_common(CLI::App* cmd, DataArgs& args, bool user_required) {
  cmd->add_option("--home", args.home, "Hearth home folder (default: $HEARTH_HOME or ~/.hearth)");
  auto* user = cmd->add_option("--user", args.user, "whose data");
  if (user_required) user->required();
  cmd->add_flag("--sandbox", args.sandbox, "run with socket creation forbidden (seccomp)");
  return cmd;
}

const CommandRegistration registration("data", [](CLI::App& app) {
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
  CLI::App* del = add_common(data->add_subcommand("delete", "delete records (all or none)"), *args, true);
  del->add_option("--kind", args->kind, "document or example")->check(CLI::IsMember({"document", "example"}));
  del->add_option("--id", args->ids, "record id(s)")->required();
  del->callback([args] { run_delete(*args); });
});

}  // namespace
}  // namespace hearth::cli
