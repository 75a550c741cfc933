#include "storage/migrations.h"

#include <string>

#include "core/error.h"
#include "storage/database.h"

namespace hearth::storage {

namespace {

struct Migration {
  int version;
  const char* sql;
};

// Append only: never edit a migration that has shipped; add a new one.
const Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE key_config (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  source TEXT NOT NULL CHECK (source IN ('passphrase', 'key_file', 'raw_key')),
  salt BLOB, opslimit INTEGER, memlimit INTEGER,
  verifier BLOB NOT NULL,
  created INTEGER NOT NULL);
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  wrapped_key BLOB,
  redaction TEXT NOT NULL DEFAULT 'mask' CHECK (redaction IN ('off', 'mask', 'drop')),
  created INTEGER NOT NULL);
CREATE TABLE documents (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  content_hash BLOB NOT NULL,
  sealed BLOB NOT NULL,
  sealed_source BLOB,
  bytes INTEGER NOT NULL,
  created INTEGER NOT NULL,
  UNIQUE (user_id, content_hash));
CREATE TABLE examples (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  format TEXT NOT NULL CHECK (format IN ('chat', 'completion')),
  content_hash BLOB NOT NULL,
  sealed BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  created INTEGER NOT NULL,
  UNIQUE (user_id, content_hash));
CREATE TABLE adapters (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  method TEXT NOT NULL,
  rank INTEGER NOT NULL,
  targets TEXT NOT NULL,
  base_fingerprint TEXT NOT NULL,
  metrics TEXT NOT NULL DEFAULT '{}',
  file_path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  created INTEGER NOT NULL,
  UNIQUE (user_id, name, version));
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')),
  config TEXT NOT NULL DEFAULT '{}',
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL);
CREATE TABLE checkpoints (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  file_path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  created INTEGER NOT NULL);
CREATE TABLE metrics (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  name TEXT NOT NULL,
  value REAL NOT NULL);
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  user_id INTEGER,
  record_count INTEGER NOT NULL DEFAULT 0,
  detail TEXT NOT NULL DEFAULT '');
CREATE INDEX documents_user ON documents(user_id);
CREATE INDEX examples_user ON examples(user_id);
CREATE INDEX adapters_user ON adapters(user_id, name);
CREATE INDEX jobs_user ON jobs(user_id);
CREATE INDEX checkpoints_job ON checkpoints(job_id);
CREATE INDEX metrics_job ON metrics(job_id, step);
)sql"},
    // Jobs run in slices by a process that may die: who runs one (pid and its start time, so a
    // reused pid is not mistaken for the owner), its progress for other processes to read, and
    // the adapter it produced; and the adapter version a user pinned for serving.
    {2, R"sql(
ALTER TABLE jobs ADD COLUMN progress TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN owner_pid INTEGER;
ALTER TABLE jobs ADD COLUMN owner_start INTEGER;
ALTER TABLE jobs ADD COLUMN adapter_id INTEGER REFERENCES adapters(id) ON DELETE SET NULL;
CREATE TABLE adapter_pins (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (user_id, name));
)sql"},
    // The nonce of each sealed file, recorded when it is written: after the file authenticates,
    // an equal nonce proves it is the version sealed for the row (an older seal of a reused row
    // id has another random nonce), without hashing the whole file on every load as the SHA-256
    // check did. Rows from before keep '' and are checked by their SHA-256.
    {3, R"sql(
ALTER TABLE adapters ADD COLUMN seal_nonce TEXT NOT NULL DEFAULT '';
ALTER TABLE checkpoints ADD COLUMN seal_nonce TEXT NOT NULL DEFAULT '';
)sql"},
};

int current_version(Database& db) {
  Statement s = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  s.step();
  return static_cast<int>(s.column_int(0));
}

}  // namespace

int latest_schema_version() { return kMigrations[std::size(kMigrations) - 1].version; }

void apply_migrations(Database& db) {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)");
  if (current_version(db) == latest_schema_version()) return;
  for (const Migration& m : kMigrations) {
    Transaction tx(db);
    // Re-read under the write lock: another process may have migrated meanwhile.
    int now = current_version(db);
    if (now > latest_schema_version()) {
      fail(ErrorCode::kUnsupported, db.path().string() + " has schema version " + std::to_string(now) +
                                        ", newer than this Hearth knows (" +
                                        std::to_string(latest_schema_version()) + "); upgrade Hearth");
    }
    if (now >= m.version) continue;
    db.exec(m.sql);
    db.prepare("INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)").bind(1, int64_t{m.version}).bind(2, unix_now()).run();
    tx.commit();
  }
}

}  // namespace hearth::storage
