// JSON helpers over nlohmann::json that turn every malformed document, missing field or
// field of the wrong type into one Error naming the document and the field.
#pragma once
#include <nlohmann/json.hpp>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/error.h"

namespace hearth {

using Json = nlohmann::json;

// Parses `text`; `what` names the document in errors (e.g. "config.json").
Json parse_json(std::string_view text, const std::string& what);
// Reads and parses a JSON file (at most 256 MiB).
Json read_json_file(const std::filesystem::path& path);

// Returns j[key] converted to T; fails with kCorruptFile naming `what` and `key` when the
// field is missing or has the wrong type.
template <typename T>
T json_get(const Json& j, const std::string& key, const std::string& what) {
  if (!j.is_object() || !j.contains(key)) fail(ErrorCode::kCorruptFile, what + ": missing field \"" + key + "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(ErrorCode::kCorruptFile, what + ": field \"" + key + "\" has the wrong type (" + j.at(key).type_name() + ")");
  }
}

// Like json_get, but returns `fallback` when the field is absent or null.
template <typename T>
T json_get_or(const Json& j, const std::string& key, T fallback, const std::string& what) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return fallback;
  return json_get<T>(j, key, what);
}

// Fails with kInvalidArgument naming the first field of `j` that is not in `allowed`.
void json_reject_unknown_fields(const Json& j, std::initializer_list<std::string_view> allowed,
                                const std::string& what);

}  // namespace hearth
