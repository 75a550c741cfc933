// Getting a passphrase from a person: the HEARTH_PASSPHRASE variable, else a prompt without
// echo on the terminal, else a clear error (a job without a terminal must use a key file).
#pragma once
#include <string>

namespace hearth::privacy {

// Returns the passphrase; kAuthentication with advice when none can be had.
std::string obtain_passphrase(const std::string& prompt = "Hearth passphrase: ");

}  // namespace hearth::privacy

#include <filesystem>

#include "privacy/master_key.h"

namespace hearth::privacy {

// What a command-line tool unlocks with: the key file when one is given, else a passphrase
// from obtain_passphrase().
MasterKeySource master_key_source_for_cli(const std::filesystem::path& key_file);

}  // namespace hearth::privacy
