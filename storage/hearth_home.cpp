#include "storage/hearth_home.h"

#include <sys/stat.h>

#include <cstdlib>

#include "core/error.h"

namespace fs = std::filesystem;

namespace hearth::storage {

fs::path resolve_home(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("HEARTH_HOME"); env && *env) return env;
  const char* home = std::getenv("HOME");
  require(home && *home, ErrorCode::kInvalidArgument, "HOME is not set; pass --home DIR");
  return fs::path(home) / ".hearth";
}

fs::path prepare_home(const fs::path& home) {
  std::error_code ec;
  fs::create_directories(home, ec);
  if (ec) fail(ErrorCode::kIo, "cannot create Hearth home " + home.string() + ": " + ec.message());
  require(fs::is_directory(home), ErrorCode::kInvalidArgument, home.string() + " is not a folder");
  if (::chmod(home.c_str(), 0700) != 0) fail(ErrorCode::kIo, "cannot restrict " + home.string() + " to its owner");
  return home;
}

fs::path database_path(const fs::path& home) { return home / "hearth.db"; }

fs::path user_files_dir(const fs::path& home, int64_t user_id) {
  fs::path dir = home / "users" / std::to_string(user_id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorCode::kIo, "cannot create " + dir.string() + ": " + ec.message());
  ::chmod((home / "users").c_str(), 0700);
  ::chmod(dir.c_str(), 0700);
  return dir;
}

}  // namespace hearth::storage
