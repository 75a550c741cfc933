#include "core/json_fields.h"

#include <cmath>

#include "core/error.h"

namespace hearth {

JsonFields::JsonFields(const Json& j, std::string what) : j_(j), what_(std::move(what)) {
  require(j_.is_object(), ErrorCode::kInvalidArgument, what_ + ": expected a JSON object, not " + std::string(j_.type_name()));
}

const Json* JsonFields::field(const std::string& key) {
  read_.insert(key);
  auto it = j_.find(key);
  return it == j_.end() || it->is_null() ? nullptr : &*it;
}

void JsonFields::wrong(const std::string& key, const std::string& expected) const {
  fail(ErrorCode::kInvalidArgument,
       what_ + ": field \"" + key + "\" is " + j_.at(key).dump() + "; expected " + expected);
}

void JsonFields::read(const std::string& key, bool& out) {
  if (const Json* v = field(key)) {
    if (!v->is_boolean()) wrong(key, "true or false");
    out = v->get<bool>();
  }
}

void JsonFields::read(const std::string& key, std::string& out) {
  if (const Json* v = field(key)) {
    if (!v->is_string()) wrong(key, "a string");
    out = v->get<std::string>();
  }
}

void JsonFields::read(const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
  if (const Json* v = field(key)) {
    const std::string range = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (v->is_number_unsigned()) {
      const uint64_t u = v->get<uint64_t>();
      if (u > uint64_t(INT64_MAX) || int64_t(u) > hi || int64_t(u) < lo) wrong(key, range);
      out = int64_t(u);
      return;
    }
    if (!v->is_number_integer()) wrong(key, range);
    const int64_t i = v->get<int64_t>();
    if (i < lo || i > hi) wrong(key, range);
    out = i;
  }
}

void JsonFields::read(const std::string& key, int& out, int lo, int hi) {
  int64_t wide = out;
  read(key, wide, lo, hi);
  out = static_cast<int>(wide);
}

void JsonFields::read(const std::string& key, uint64_t& out) {
  if (const Json* v = field(key)) {
    if (!v->is_number_unsigned()) wrong(key, "a non-negative integer");
    out = v->get<uint64_t>();
  }
}

void JsonFields::read(const std::string& key, double& out, double lo, double hi) {
  if (const Json* v = field(key)) {
    std::string range = "a number in [" + Json(lo).dump() + ", " + Json(hi).dump() + "]";
    if (!v->is_number()) wrong(key, range);
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) wrong(key, range);
    out = d;
  }
}

Json JsonFields::object(const std::string& key) {
  const Json* v = field(key);
  if (v == nullptr) return Json();
  if (!v->is_object()) wrong(key, "an object");
  return *v;
}

void JsonFields::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (!read_.count(it.key())) {
      std::string known;
      for (const std::string& k : read_) known += (known.empty() ? "" : ", ") + k;
      fail(ErrorCode::kInvalidArgument, what_ + ": unknown field \"" + it.key() + "\" (known fields: " + known + ")");
    }
  }
}

}  // namespace hearth
