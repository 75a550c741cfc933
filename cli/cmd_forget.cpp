// `hearth forget --user U`: erases a user: rows, adapters, checkpoints and the data key, then
// vacuums. Needs no key, so a forgotten passphrase never blocks erasure.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "core/json.h"
#include "privacy/sandbox.h"
#include "storage/audit_log.h"
#include "storage/database.h"
#include "storage/erasure.h"
#include "storage/hearth_home.h"
#include "storage/vault.h"

namespace hearth::cli {
namespace {

struct ForgetArgs {
  std::string home;
  std::string user;
  bool sandbox = false;
};

void run_forget(const ForgetArgs& args) {
  if (args.sandbox) privacy::enter_no_network_sandbox();
  std::filesystem::path home = storage::resolve_home(args.home);
  storage::Database db(storage::existing_database(home));
  storage::ForgetReport r = storage::forget_user(db, home, args.user, storage::current_os_actor());
  std::printf("forgot user \"%s\": %lld document(s), %lld example(s), %lld adapter(s), %lld job(s), "
              "%lld checkpoint(s), %lld file(s) removed; key destroyed, database vacuumed\n",
              args.user.c_str(), static_cast<long long>(r.documents), static_cast<long long>(r.examples),
              static_cast<long long>(r.adapters), static_cast<long long>(r.jobs),
              static_cast<long long>(r.checkpoints), static_cast<long long>(r.files_removed));
  print_json_result(Json{{"user", args.user}, {"documents", r.documents}, {"examples", r.examples},
                         {"adapters", r.adapters}, {"jobs", r.jobs}, {"checkpoints", r.checkpoints},
                         {"files_removed", r.files_removed}}
                        .dump());
}

const CommandRegistration registration("forget", [](CLI::App& app) {
  auto args = std::make_shared<ForgetArgs>();
  CLI::App* cmd = app.add_subcommand("forget", "erase a user's data, adapters, checkpoints and key");
  cmd->add_option("--home", args->home, "Hearth home folder (default: $HEARTH_HOME or ~/.hearth)");
  cmd->add_option("--user", args->user, "the user to erase")->required();
  cmd->add_flag("--sandbox", args->sandbox, "run with socket creation forbidden (seccomp)");
  cmd->callback([args] { run_forget(*args); });
});

}  // namespace
}  // namespace hearth::cli
