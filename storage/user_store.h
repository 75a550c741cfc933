// The users table: one row per person whose data Hearth keeps, with their wrapped data key
// and their redaction mode.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "privacy/redactor.h"
#include "privacy/secret_key.h"

namespace hearth::storage {

class Database;

struct UserRecord {
  int64_t id = 0;
  std::string name;
  privacy::RedactionMode redaction = privacy::RedactionMode::kMask;
  int64_t created = 0;
};

// A user name: 1-256 bytes of valid UTF-8 without control characters. Quotes and SQL
// metacharacters are fine (values are always bound). kInvalidArgument otherwise.
void validate_user_name(const std::string& name);

class UserStore {
 public:
  explicit UserStore(Database& db) : db_(db) {}

  // Creates the user with a fresh random data key wrapped by `master`.
  UserRecord create(const std::string& name, privacy::RedactionMode mode, const privacy::SecretKey& master);
  std::optional<UserRecord> find(const std::string& name);
  UserRecord get(const std::string& name);  // kNotFound naming the user
  UserRecord get_or_create(const std::string& name, privacy::RedactionMode mode, const privacy::SecretKey& master);
  void set_redaction(int64_t user_id, privacy::RedactionMode mode);
  std::vector<UserRecord> list();
  // Deletes the user row; every dependent row goes with it (ON DELETE CASCADE).
  bool remove(int64_t user_id);

 private:
  Database& db_;
};

}  // namespace hearth::storage
