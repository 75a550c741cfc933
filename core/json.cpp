#include "core/json.h"

#include <algorithm>

#include "core/atomic_file.h"
#include "core/range_check.h"

namespace hearth {

Json parse_json(std::string_view text, const std::string& what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorCode::kCorruptFile, what + " is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::exception&) {
    // Well-formed text holding a value no JSON reader can keep, e.g. the number 1e999.
    fail(ErrorCode::kCorruptFile, what + " holds a number too large to represent; it is damaged or not the file expected");
  }
}

Json read_json_file(const std::filesystem::path& path) {
  return parse_json(read_file(path, size_t(256) << 20), path.string());
}

std::string json_excerpt(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 48 ? text.substr(0, 45) + "..." : text;
}

int64_t json_get_integer_in_range(const Json& j, const std::string& key, int64_t lo, int64_t hi, const std::string& what) {
  const int64_t v = json_get<int64_t>(j, key, what);  // a whole number first
  const std::string problem = integer_range_problem("\"" + key + "\"", v, lo, hi);
  if (!problem.empty()) fail(ErrorCode::kCorruptFile, what + ": " + problem);
  return v;
}

double json_get_number_in_range(const Json& j, const std::string& key, double lo, double hi, const std::string& what) {
  if (!j.is_object() || !j.contains(key)) fail(ErrorCode::kCorruptFile, what + ": missing field \"" + key + "\"");
  const Json& v = j.at(key);
  if (!v.is_number()) {
    fail(ErrorCode::kCorruptFile, what + ": \"" + key + "\" must be a finite number in [" + format_number(lo) + ", " +
                                      format_number(hi) + "], got " + json_excerpt(v));
  }
  const std::string problem = number_range_problem("\"" + key + "\"", v.get<double>(), lo, hi);
  if (!problem.empty()) fail(ErrorCode::kCorruptFile, what + ": " + problem);
  return v.get<double>();
}

void json_reject_unknown_fields(const Json& j, std::initializer_list<std::string_view> allowed,
                                const std::string& what) {
  if (!j.is_object()) fail(ErrorCode::kInvalidArgument, what + ": expected a JSON object");
  for (const auto& item : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
      fail(ErrorCode::kInvalidArgument, what + ": unknown field \"" + item.key() + "\"");
    }
  }
}

}  // namespace hearth
