// Where the shared real assets (models, tokenizers, texts) live: $HEARTH_ASSETS, or the
// `shared` folder beside the source tree. Tests and benchmarks read them only through here.
#pragma once
#include <filesystem>
#include <string>

namespace hearth {

std::filesystem::path assets_dir();
// assets_dir() / relative; throws kNotFound naming the path and HEARTH_ASSETS if missing.
std::filesystem::path asset_path(const std::string& relative);

}  // namespace hearth
