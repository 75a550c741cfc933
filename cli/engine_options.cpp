#include "cli/engine_options.h"

#include "cli/command.h"
#include "privacy/passphrase_prompt.h"
#include "storage/hearth_home.h"

namespace hearth::cli {

engine::EngineOptions engine_options(const std::string& key_file, bool with_key, bool sandbox) {
  engine::EngineOptions o;
  o.home = storage::resolve_home(global_options().home);
  if (with_key) o.key = privacy::master_key_source_for_cli(key_file);
  o.sandbox = sandbox;
  return o;
}

}  // namespace hearth::cli
