// Getting a passphrase from a person: the HEARTH_PASSPHRASE variable, else a prompt without
// echo on the terminal, else a clear error (a job without a terminal must use a key file).
#pragma once
#include <string>

namespace hearth::privacy {

// Returns the passphrase; kAuthentication with advice when none can be had.
std::string obtain_passphrase(const std::string& prompt = "Hearth passphrase: ");

}  // namespace hearth::privacy
