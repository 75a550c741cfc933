#include "core/assets.h"

#include <cstdlib>

#include "core/error.h"

namespace hearth {

std::filesystem::path assets_dir() {
  if (const char* env = std::getenv("HEARTH_ASSETS"); env != nullptr && *env != '\0') return env;
  return HEARTH_DEFAULT_ASSETS;
}

std::filesystem::path asset_path(const std::string& relative) {
  auto p = assets_dir() / relative;
  if (!std::filesystem::exists(p)) {
    fail(ErrorCode::kNotFound, "asset " + p.string() + " is missing; set HEARTH_ASSETS to the shared assets folder");
  }
  return p;
}

}  // namespace hearth
