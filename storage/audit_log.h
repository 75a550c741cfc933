// The audit log: who did what to whose data, and when, with record counts. It never holds
// content, file names or anything else from the records themselves.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hearth::storage {

class Database;

struct AuditEntry {
  int64_t id = 0;
  int64_t time = 0;
  std::string actor;   // the OS account, or "api:<app>"
  std::string action;  // "ingest", "delete", "forget", "train", ...
  std::optional<int64_t> user_id;
  int64_t record_count = 0;
  std::string detail;  // counts and options only, e.g. "documents=2 examples=5 redaction=mask"
};

// The login name of the effective user, for `actor`.
std::string current_os_actor();

class AuditLog {
 public:
  explicit AuditLog(Database& db) : db_(db) {}
  void append(const std::string& actor, const std::string& action, std::optional<int64_t> user_id,
              int64_t record_count, const std::string& detail = "");
  std::vector<AuditEntry> recent(int64_t limit = 100);

 private:
  Database& db_;
};

}  // namespace hearth::storage
