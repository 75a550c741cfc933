// `hearth forget --user U`: erases a user: rows, adapters, checkpoints and the data key, then
// vacuums. Needs no key, so a forgotten passphrase never blocks erasure. Asks first on a
// terminal; --yes confirms without asking.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/engine.h"

namespace hearth::cli {
namespace {

struct ForgetArgs {
  std::string user;
  bool sandbox = false;
};

void run_forget(const ForgetArgs& args) {
  engine::Engine e(engine_options("", /*with_key=*/false, args.sandbox));
  const std::vector<storage::UserRecord> users = e.users();
  require(std::any_of(users.begin(), users.end(), [&](const storage::UserRecord& u) { return u.name == args.user; }),
          ErrorCode::kNotFound, "no user named \"" + args.user + "\"; nothing was erased");
  if (!confirm("Erase everything Hearth keeps for user \"" + args.user + "\" (data, adapters, jobs, key)?"))
    fail(ErrorCode::kCancelled, "not confirmed; nothing was erased");
  const storage::ForgetReport r = e.forget(args.user);
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

const CommandRegistration forget_command("forget", [](CLI::App& app) {
  auto args = std::make_shared<ForgetArgs>();
  CLI::App* cmd = app.add_subcommand("forget", "erase a user's data, adapters, checkpoints and key (asks first; --yes)");
  cmd->add_option("--user", args->user, "the user to erase")->required();
  cmd->add_flag("--sandbox", args->sandbox, "run with socket creation forbidden (seccomp)");
  cmd->callback([args] { run_forget(*args); });
});

}  // namespace
}  // namespace hearth::cli
