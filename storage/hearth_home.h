// The Hearth home folder: where it is (--home, else HEARTH_HOME, else ~/.hearth), created
// with mode 0700, and the paths of the files inside it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace hearth::storage {

// `flag` if non-empty, else $HEARTH_HOME, else $HOME/.hearth.
std::filesystem::path resolve_home(const std::string& flag);

// Creates the home (and parents) if missing and makes it 0700. Returns it.
std::filesystem::path prepare_home(const std::filesystem::path& home);

std::filesystem::path database_path(const std::filesystem::path& home);  // home/hearth.db
// home/users/<id>: the sealed files (adapters, checkpoints) of one user, mode 0700.
std::filesystem::path user_files_dir(const std::filesystem::path& home, int64_t user_id);

}  // namespace hearth::storage
