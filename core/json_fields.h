// Strict reading of a JSON object's fields into typed settings: a wrong type (5.5 for a count,
// "3" for a number), a value out of its range, or a field nobody reads is one Error naming the
// document, the field, the value and what is allowed. Missing fields keep the caller's default.
#pragma once
#include <cstdint>
#include <set>
#include <string>

#include "core/json.h"

namespace hearth {

class JsonFields {
 public:
  // kInvalidArgument unless `j` is an object; `what` names the document in errors.
  JsonFields(const Json& j, std::string what);

  // Each reads `key` into `out` if present (null counts as absent) and remembers it was read.
  void read(const std::string& key, bool& out);
  void read(const std::string& key, std::string& out);
  void read(const std::string& key, int64_t& out, int64_t lo, int64_t hi);
  void read(const std::string& key, int& out, int lo, int hi);
  void read(const std::string& key, uint64_t& out);
  void read(const std::string& key, double& out, double lo, double hi);  // finite, in [lo, hi]
  // A nested object (for the caller to read with its own JsonFields); null when absent.
  Json object(const std::string& key);

  // kInvalidArgument naming the first field that no read() asked for.
  void finish() const;

 private:
  const Json* field(const std::string& key);
  [[noreturn]] void wrong(const std::string& key, const std::string& expected) const;

  const Json& j_;
  std::string what_;
  std::set<std::string> read_;
};

}  // namespace hearth
