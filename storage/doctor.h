// `hearth doctor`'s checks of a Hearth home, all without writing a byte: the database's full
// integrity_check, each sealed file the registry points at (present, SHA-256 as recorded), the
// backup's integrity; and, with the key, that every sealed record still opens.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/backup.h"

namespace hearth::storage {

class Database;
class Keyring;

struct HomeHealth {
  std::filesystem::path database;
  int64_t database_bytes = 0;
  std::string integrity;         // "ok" or SQLite's problems
  double integrity_ms = 0;
  int64_t sealed_files = 0;      // adapter and checkpoint files the database points at
  std::vector<std::string> file_problems;  // one line each, naming the record
  std::vector<std::string> unreferenced_files;  // under users/ but in no row (e.g. after a restore)
  BackupInfo backup;
  std::string backup_integrity;  // "ok", the problems, or "" without a backup
  bool records_verified = false;
  int64_t records_opened = 0;
  std::vector<std::string> record_problems;  // one line each, naming the record

  bool database_ok() const { return integrity == "ok"; }
  bool healthy() const { return database_ok() && file_problems.empty() && record_problems.empty(); }
};

// The keyless checks of `home` (kNotFound when it has no database). A database too damaged to
// be read at all is reported in `integrity`, not thrown.
HomeHealth check_home(const std::filesystem::path& home);

// Opens every document, example, adapter file and checkpoint of every user with the unlocked
// keyring; each that fails is one line of `health.record_problems`.
void verify_records(Database& db, Keyring& keyring, HomeHealth& health);

}  // namespace hearth::storage
