// The last good copy of a Hearth home's database: made with SQLite's online backup API after
// each successful job that changed the data, checked, and renamed into place in one step; and
// restoring it when the database is damaged (`hearth doctor --restore`).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace hearth::storage {

class Database;

// <folder of the database>/backup/<its name>: home/backup/hearth.db.
std::filesystem::path backup_path(const std::filesystem::path& db_path);

struct BackupInfo {
  bool exists = false;
  std::filesystem::path path;
  int64_t made = 0;   // seconds since the epoch (the file's modification time)
  int64_t bytes = 0;
};
BackupInfo backup_info(const std::filesystem::path& db_path);

// Copies the open database (a consistent snapshot, whatever the WAL holds) to a temporary file
// beside the backup, checks the copy with quick_check, syncs it and renames it over the
// previous backup; the previous backup's bytes are then overwritten, so rows erased since (a
// forgotten user) do not linger in it or in the blocks it freed. Mode 0600 in a 0700 folder.
BackupInfo make_backup(Database& db);

// make_backup after a job that succeeded: a failure to back up (a full disk) does not undo the
// job; it is logged as a warning naming the cause, and false is returned.
bool back_up_after_job(Database& db);

// Replaces the backup only if one exists (after an erasure, so it no longer holds what was
// erased); returns whether it did.
bool refresh_backup(Database& db);

struct RestoreReport {
  BackupInfo backup;
  std::filesystem::path damaged_copy;  // where the replaced database (and its -wal) now are
};

// Replaces the database at `db_path` with the backup, after checking the backup with
// integrity_check (kCorruptFile if it is damaged too; kNotFound if there is none). The current
// database, its -wal and -shm files are moved aside to `<db>.damaged-<time>` first, so a stale
// WAL is never applied to the restored file and nothing is deleted.
RestoreReport restore_backup(const std::filesystem::path& db_path);

// One sentence saying how to recover the database at `db_path`: the command that restores the
// backup (and when it was made), or, without one, how to salvage the damaged file.
std::string recovery_advice(const std::filesystem::path& db_path);

// "2024-06-01 12:00:00 UTC".
std::string format_utc(int64_t unix_seconds);

}  // namespace hearth::storage
