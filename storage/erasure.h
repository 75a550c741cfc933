// Erasure of a user: rows, adapter and checkpoint files and the wrapped data key go, then the
// database is checkpointed and vacuumed so no page or WAL frame keeps them, and the backup is
// replaced by one without them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace hearth::storage {

class Database;

struct ForgetReport {
  int64_t user_id = 0;
  int64_t documents = 0;
  int64_t examples = 0;
  int64_t adapters = 0;
  int64_t jobs = 0;
  int64_t checkpoints = 0;
  int64_t files_removed = 0;
};

// Forgets `user_name` (kNotFound if there is no such user). Needs no key: a person who lost
// their passphrase can still erase their data. Once the wrapped data key is gone, every
// ciphertext of the user left anywhere (a backup of a row, a stray sealed file) stays closed
// to this installation for good.
ForgetReport forget_user(Database& db, const std::filesystem::path& home, const std::string& user_name,
                         const std::string& actor);

}  // namespace hearth::storage
