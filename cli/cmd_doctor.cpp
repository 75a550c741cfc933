// `hearth doctor`: checks a Hearth home without writing to it (full integrity_check of the
// database, the sealed files it points at, the backup; with --verify-records every sealed
// record under the key), and with --restore replaces a damaged database with the last backup.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "core/error.h"
#include "core/json.h"
#include "privacy/passphrase_prompt.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/doctor.h"
#include "storage/hearth_home.h"
#include "storage/vault.h"

namespace hearth::cli {
namespace {

struct DoctorArgs {
  std::string key_file;
  bool verify_records = false;
  bool restore = false;
  bool force = false;
};

Json health_json(const storage::HomeHealth& h) {
  Json j{{"database", h.database.string()},     {"database_bytes", h.database_bytes}, {"integrity", h.integrity},
         {"integrity_ms", h.integrity_ms},      {"sealed_files", h.sealed_files},     {"file_problems", h.file_problems},
         {"unreferenced_files", h.unreferenced_files}, {"healthy", h.healthy()}};
  j["backup"] = h.backup.exists ? Json{{"path", h.backup.path.string()}, {"made", h.backup.made},
                                       {"bytes", h.backup.bytes}, {"integrity", h.backup_integrity}}
                                : Json(nullptr);
  if (h.records_verified) j["records"] = Json{{"opened", h.records_opened}, {"problems", h.record_problems}};
  return j;
}

void print_health(const storage::HomeHealth& h) {
  std::printf("database %s (%.1f MB): integrity_check %s (%.0f ms)\n", h.database.string().c_str(), h.database_bytes / 1e6,
              h.integrity.c_str(), h.integrity_ms);
  if (h.database_ok()) {
    std::printf("sealed files: %lld referenced, %zu with problems\n", static_cast<long long>(h.sealed_files),
                h.file_problems.size());
  }
  for (const std::string& p : h.file_problems) std::printf("  %s\n", p.c_str());
  for (const std::string& f : h.unreferenced_files) std::printf("  not referenced by the database (left over): %s\n", f.c_str());
  if (h.backup.exists) {
    std::printf("backup %s (%.1f MB, made %s): integrity_check %s\n", h.backup.path.string().c_str(), h.backup.bytes / 1e6,
                storage::format_utc(h.backup.made).c_str(), h.backup_integrity.c_str());
  } else {
    std::printf("backup: none yet at %s (one is made after each successful job)\n", h.backup.path.string().c_str());
  }
  if (h.records_verified) {
    std::printf("sealed records: %lld open under the key, %zu damaged\n", static_cast<long long>(h.records_opened),
                h.record_problems.size());
    for (const std::string& p : h.record_problems) std::printf("  %s\n", p.c_str());
  }
}

void run_check(const DoctorArgs& args) {
  const std::filesystem::path home = storage::resolve_home(global_options().home);
  storage::HomeHealth h = storage::check_home(home);
  if (args.verify_records && h.database_ok()) {
    storage::Vault vault(home, privacy::master_key_source_for_cli(args.key_file));
    storage::verify_records(vault.db(), vault.keyring(), h);
  }
  print_health(h);
  print_json_result(health_json(h).dump());
  if (!h.database_ok()) {
    fail(ErrorCode::kCorruptFile, "the database " + h.database.string() + " is damaged. " +
                                      storage::recovery_advice(h.database));
  }
  require(h.healthy(), ErrorCode::kCorruptFile,
          std::to_string(h.file_problems.size() + h.record_problems.size()) +
              " record(s) are damaged (listed above); the rest of the home is intact");
}

void run_restore(const DoctorArgs& args) {
  const std::filesystem::path home = storage::resolve_home(global_options().home);
  const std::filesystem::path db = storage::existing_database(home);
  const storage::HomeHealth h = storage::check_home(home);
  require(!h.database_ok() || args.force, ErrorCode::kInvalidArgument,
          "the database " + db.string() + " passes integrity_check; restoring the backup would lose every change since " +
              (h.backup.exists ? storage::format_utc(h.backup.made) : std::string("it was made")) +
              "; pass --force to restore anyway");
  const storage::RestoreReport r = storage::restore_backup(db);
  storage::Database restored(db);  // opens as every command will: checked and migrated
  std::printf("restored %s from the backup made %s; the replaced database is kept at %s (it holds sealed user data: "
              "delete it once you no longer need it)\n",
              db.string().c_str(), storage::format_utc(r.backup.made).c_str(), r.damaged_copy.string().c_str());
  print_json_result(Json{{"database", db.string()}, {"backup", r.backup.path.string()}, {"backup_made", r.backup.made},
                         {"damaged_copy", r.damaged_copy.string()}}
                        .dump());
}

const CommandRegistration doctor_command("doctor", [](CLI::App& app) {
  auto args = std::make_shared<DoctorArgs>();
  CLI::App* cmd = app.add_subcommand("doctor", "check a Hearth home for damage (without writing to it), or restore its backup");
  cmd->add_flag("--verify-records", args->verify_records, "also open every sealed record with the key (passphrase or --key-file)");
  cmd->add_option("--key-file", args->key_file, "with --verify-records: unlock with this key file instead of a passphrase");
  cmd->add_flag("--restore", args->restore, "replace a damaged database with the last good backup (the damaged file is kept)");
  cmd->add_flag("--force", args->force, "with --restore: restore even though the database passes its check");
  cmd->callback([args] { args->restore ? run_restore(*args) : run_check(*args); });
});

}  // namespace
}  // namespace hearth::cli
