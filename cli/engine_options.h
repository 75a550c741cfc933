// How a command opens the engine on a Hearth home: the home (global --home, else HEARTH_HOME,
// else ~/.hearth), the key (--key-file, else a passphrase), and whether to enter the sandbox.
#pragma once
#include <string>

#include "engine/engine.h"

namespace hearth::cli {

// with_key = false opens an existing home without its key (list, delete, forget, status).
engine::EngineOptions engine_options(const std::string& key_file, bool with_key, bool sandbox);

}  // namespace hearth::cli
