// JSON helpers over nlohmann::json that turn every malformed document, missing field or
// field of the wrong type into one Error naming the document and the field.
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace hearth {

using Json = nlohmann::json;

// Parses `text`; `what` names the document in errors (e.g. "config.json").
Json parse_json(std::string_view text, const std::string& what);
// Reads and parses a JSON file (at most 256 MiB).
Json read_json_file(const std::filesystem::path& path);

namespace json_detail {

// Why `value` is not an integer that type I holds, or "". nlohmann converts any number by a plain
// cast, so 5.5 would silently become 5 and 1e300 undefined behaviour: both are refused instead.
template <typename I>
std::string integer_problem(const Json& value) {
  const std::string shown = value.dump().substr(0, 40);
  if (!value.is_number_integer()) return "must be a whole number, got " + shown;
  constexpr auto lowest = static_cast<int64_t>(std::numeric_limits<I>::min());
  constexpr auto highest = static_cast<uint64_t>(std::numeric_limits<I>::max());
  bool fits = false;
  if (value.is_number_unsigned()) {
    fits = value.get<uint64_t>() <= highest;
  } else {
    const int64_t v = value.get<int64_t>();
    fits = v >= lowest && (v < 0 || static_cast<uint64_t>(v) <= highest);
  }
  if (fits) return "";
  return "must be between " + std::to_string(std::numeric_limits<I>::min()) + " and " + std::to_string(highest) +
         ", got " + shown;
}

template <typename T>
constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <typename T>
struct IntegerList : std::false_type {};
template <typename E>
struct IntegerList<std::vector<E>> : std::bool_constant<kIsInteger<E>> {};

// The problem with an integer field or list of integers; "" for every other kind of field (and
// for a value of another shape altogether, which get<T>() reports as the wrong type).
template <typename T>
std::string field_problem(const Json& value) {
  if constexpr (kIsInteger<T>) {
    if (!value.is_array() && !value.is_object()) return integer_problem<T>(value);
  } else if constexpr (IntegerList<T>::value) {
    if (value.is_array()) {
      for (const Json& element : value) {
        std::string problem = integer_problem<typename T::value_type>(element);
        if (!problem.empty()) return "holds a value that " + problem;
      }
    }
  }
  return "";
}

}  // namespace json_detail

// Returns j[key] converted to T; fails with kCorruptFile naming `what` and `key` when the
// field is missing or has the wrong type. Integer fields take only integers in T's range.
template <typename T>
T json_get(const Json& j, const std::string& key, const std::string& what) {
  if (!j.is_object() || !j.contains(key)) fail(ErrorCode::kCorruptFile, what + ": missing field \"" + key + "\"");
  const Json& value = j.at(key);
  if (std::string problem = json_detail::field_problem<T>(value); !problem.empty()) {
    fail(ErrorCode::kCorruptFile, what + ": field \"" + key + "\" " + problem);
  }
  try {
    return value.get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(ErrorCode::kCorruptFile, what + ": field \"" + key + "\" has the wrong type (" + value.type_name() + ")");
  }
}

// A short rendering of a JSON value for error messages (long values are cut).
std::string json_excerpt(const Json& value);

// An integer field in lo..hi; kCorruptFile naming the field, the value and the range.
int64_t json_get_integer_in_range(const Json& j, const std::string& key, int64_t lo, int64_t hi, const std::string& what);
// A finite number field in [lo, hi]; kCorruptFile naming the field, the value and the range.
double json_get_number_in_range(const Json& j, const std::string& key, double lo, double hi, const std::string& what);

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
