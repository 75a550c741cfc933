#include "core/json.h"

#include <algorithm>

#include "core/atomic_file.h"

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
