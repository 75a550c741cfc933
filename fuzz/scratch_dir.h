// A folder of this fuzzing process under the system temp dir, for parsers that take a path
// (model and adapter folders): each input's files are rewritten there, then read back.
#pragma once
#include <filesystem>
#include <string_view>

namespace hearth::fuzz {

// <tmp>/hearth_fuzz_<pid>/<name>, emptied and created on each call; removed at exit.
std::filesystem::path fresh_scratch_folder(const std::string& name);

// Writes `bytes` to `path` (plain write: these are throw-away inputs, not data to keep).
void write_bytes(const std::filesystem::path& path, std::string_view bytes);

}  // namespace hearth::fuzz
