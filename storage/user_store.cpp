#include "storage/user_store.h"

#include "core/error.h"
#include "privacy/data_key.h"
#include "storage/database.h"
#include "storage/utf8.h"

namespace hearth::storage {

namespace {

UserRecord read_user(const Statement& s) {
  return UserRecord{s.column_int(0), s.column_text(1), privacy::parse_redaction_mode(s.column_text(2)),
                    s.column_int(3)};
}

}  // namespace

void validate_user_name(const std::string& name) {
  require(!name.empty(), ErrorCode::kInvalidArgument, "the user name is empty");
  require(name.size() <= 256, ErrorCode::kInvalidArgument, "the user name is longer than 256 bytes");
  require(first_invalid_utf8(name) == std::string::npos, ErrorCode::kInvalidArgument,
          "the user name is not valid UTF-8");
  for (unsigned char c : name)
    require(c >= 0x20 && c != 0x7f, ErrorCode::kInvalidArgument, "the user name contains a control character");
}

UserRecord UserStore::create(const std::string& name, privacy::RedactionMode mode, const privacy::SecretKey& master) {
  validate_user_name(name);
  require(!find(name), ErrorCode::kInvalidArgument, "user \"" + name + "\" already exists");
  Statement insert = db_.prepare("INSERT INTO users (name, redaction, created) VALUES (?1, ?2, ?3)");
  insert.bind_text(1, name).bind_text(2, privacy::redaction_mode_name(mode)).bind(3, unix_now()).run();
  UserRecord user{db_.last_insert_id(), name, mode, unix_now()};
  // The key is wrapped once the id exists, because the id is part of its associated data.
  privacy::SecretKey data_key = privacy::SecretKey::random();
  db_.prepare("UPDATE users SET wrapped_key = ?1 WHERE id = ?2")
      .bind_blob(1, privacy::wrap_data_key(master, data_key, user.id))
      .bind(2, user.id)
      .run();
  return user;
}

std::optional<UserRecord> UserStore::find(const std::string& name) {
  Statement s = db_.prepare("SELECT id, name, redaction, created FROM users WHERE name = ?1");
  s.bind_text(1, name);
  if (!s.step()) return std::nullopt;
  return read_user(s);
}

UserRecord UserStore::get(const std::string& name) {
  auto user = find(name);
  require(user.has_value(), ErrorCode::kNotFound, "no user named \"" + name + "\"");
  return *user;
}

UserRecord UserStore::get_or_create(const std::string& name, privacy::RedactionMode mode,
                                    const privacy::SecretKey& master) {
  if (auto user = find(name)) return *user;
  return create(name, mode, master);
}

void UserStore::set_redaction(int64_t user_id, privacy::RedactionMode mode) {
  db_.prepare("UPDATE users SET redaction = ?1 WHERE id = ?2")
      .bind_text(1, privacy::redaction_mode_name(mode))
      .bind(2, user_id)
      .run();
}

std::vector<UserRecord> UserStore::list() {
  Statement s = db_.prepare("SELECT id, name, redaction, created FROM users ORDER BY id");
  std::vector<UserRecord> out;
  while (s.step()) out.push_back(read_user(s));
  return out;
}

bool UserStore::remove(int64_t user_id) {
  db_.prepare("DELETE FROM users WHERE id = ?1").bind(1, user_id).run();
  return db_.changes() > 0;
}

}  // namespace hearth::storage
