#include "storage/audit_log.h"

#include <unistd.h>

#include <cstdlib>

#include "storage/database.h"

namespace hearth::storage {

std::string current_os_actor() {
  // $USER rather than getpwuid(): the password database may be behind a socket (nscd,
  // sssd) that the no-network sandbox forbids.
  if (const char* user = std::getenv("USER"); user && *user) return user;
  return "uid:" + std::to_string(::geteuid());
}

void AuditLog::append(const std::string& actor, const std::string& action, std::optional<int64_t> user_id,
                      int64_t record_count, const std::string& detail) {
  Statement s = db_.prepare(
      "INSERT INTO audit_log (time, actor, action, user_id, record_count, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  s.bind(1, unix_now()).bind_text(2, actor).bind_text(3, action);
  if (user_id) s.bind(4, *user_id); else s.bind_null(4);
  s.bind(5, record_count).bind_text(6, detail).run();
}

std::vector<AuditEntry> AuditLog::recent(int64_t limit) {
  Statement s = db_.prepare(
      "SELECT id, time, actor, action, user_id, record_count, detail FROM audit_log ORDER BY id DESC LIMIT ?1");
  s.bind(1, limit);
  std::vector<AuditEntry> out;
  while (s.step()) {
    AuditEntry e{s.column_int(0), s.column_int(1), s.column_text(2), s.column_text(3), std::nullopt,
                 s.column_int(5), s.column_text(6)};
    if (!s.column_is_null(4)) e.user_id = s.column_int(4);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace hearth::storage
