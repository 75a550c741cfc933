// A damaged database is refused when opened (quick_check), untouched, with the way back: the
// backup made with SQLite's online backup API (a private, standalone, checked file whose
// predecessor's bytes are overwritten) and restore_backup, which keeps the damaged file aside.
// The doctor's checks name what is damaged without writing; a damaged sealed record is named
// alone; a read-only home or database says so; empty or blank files to ingest store nothing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <fstream>
#include <random>

#include "storage/adapter_registry.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/doctor.h"
#include "storage/erasure.h"
#include "storage/hearth_home.h"
#include "storage/ingest.h"
#include "storage/record_store.h"
#include "storage/sealed_blob_file.h"
#include "storage/user_store.h"
#include "test_home.h"

using namespace hearth;
using namespace hearth::storage;
using namespace hearth::storage::testing;

namespace {

// A home with `docs` documents of user ann; the vault is closed again.
void fill(const TempHome& home, int docs) {
  auto v = home.open();
  std::vector<fs::path> files;
  for (int i = 0; i < docs; ++i) files.push_back(home.file("doc" + std::to_string(i) + ".txt", "document number " + std::to_string(i) + " " + std::string(300, 'a' + i % 26)));
  IngestOptions options;
  options.user = "ann";
  options.actor = "test";
  ingest_files(v->db(), v->keyring(), files, options);
}

int64_t count(Database& db, const char* sql) {
  Statement s = db.prepare(sql);
  s.step();
  return s.column_int(0);
}

// Overwrites the first 16 bytes of every third page from page 3 on: b-tree page headers.
void damage_pages(const fs::path& db) {
  const auto size = static_cast<int64_t>(fs::file_size(db));
  std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
  std::mt19937 gen(5);
  for (int64_t off = 2 * 4096; off < size; off += 3 * 4096) {
    std::string junk(16, '\0');
    for (char& c : junk) c = static_cast<char>(gen());
    f.seekp(off);
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
}

// Moves every WAL frame into the main file and closes, so the damage below hits real pages.
void settle(const fs::path& db) { Database(db).exec("PRAGMA wal_checkpoint(TRUNCATE)"); }

Error error_opening(const fs::path& db) {
  return error_of([&] { Database d(db); });
}

TEST(Corruption, DamagedDatabaseIsRefusedUntouchedAndRestoredFromTheBackup) {
  TempHome home("damaged");
  fill(home, 12);
  const fs::path db = database_path(home.path());
  {
    Database d(db);
    const BackupInfo b = make_backup(d);
    EXPECT_TRUE(b.exists);
  }
  settle(db);
  damage_pages(db);
  const std::string damaged = sha256_hex(read_file(db));
  Error e = error_opening(db);
  EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  const std::string what = e.what();
  EXPECT_TRUE(contains(what, "is damaged (PRAGMA quick_check: ")) << what;
  EXPECT_TRUE(contains(what, "Hearth did not write to it")) << what;
  EXPECT_TRUE(contains(what, "hearth doctor --home " + home.path().string() + " --restore")) << what;
  EXPECT_TRUE(contains(what, backup_path(db).string())) << what;
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;  // one line
  // The vault (what every command opens) refuses it the same way, and nothing was written.
  EXPECT_EQ(error_of([&] { home.open(); }).code(), ErrorCode::kCorruptFile);
  EXPECT_EQ(sha256_hex(read_file(db)), damaged);
  EXPECT_FALSE(fs::exists(db.string() + "-wal") && fs::file_size(db.string() + "-wal") > 0);

  HomeHealth h = check_home(home.path());
  EXPECT_FALSE(h.database_ok());
  EXPECT_EQ(h.backup_integrity, "ok");
  EXPECT_EQ(sha256_hex(read_file(db)), damaged);  // the doctor does not write either

  const RestoreReport r = restore_backup(db);
  EXPECT_EQ(sha256_hex(read_file(r.damaged_copy)), damaged);  // kept aside, as it was
  Database restored(db);
  EXPECT_EQ(restored.integrity_check(), "ok");
  EXPECT_EQ(count(restored, "SELECT COUNT(*) FROM documents"), 12);
  auto v = home.open();
  EXPECT_EQ(RecordStore(v->db(), v->keyring()).open_document(UserStore(v->db()).get("ann").id, 1).substr(0, 17),
            "document number 0");
}

TEST(Corruption, RestoreRefusesWithoutABackupOrWithADamagedOne) {
  TempHome home("restore_refused");
  fill(home, 3);
  const fs::path db = database_path(home.path());
  const std::string before = sha256_hex(read_file(db));
  EXPECT_EQ(error_of([&] { restore_backup(db); }).code(), ErrorCode::kNotFound);
  {
    Database d(db);
    make_backup(d);
  }
  settle(backup_path(db));
  damage_pages(backup_path(db));
  Error e = error_of([&] { restore_backup(db); });
  EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  EXPECT_TRUE(contains(e.what(), "damaged too")) << e.what();
  EXPECT_EQ(sha256_hex(read_file(db)), before);
  EXPECT_FALSE(fs::exists(db.string() + ".damaged"));
}

TEST(Backup, IsPrivateStandaloneCheckedAndOverwritesItsPredecessor) {
  TempHome home("backup");
  fill(home, 4);
  const fs::path db = database_path(home.path());
  Database d(db);
  const BackupInfo first = make_backup(d);
  struct stat st {};
  ASSERT_EQ(::stat(first.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(first.path.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Standalone: a rollback-journal file with nothing beside it.
  for (const auto& entry : fs::directory_iterator(first.path.parent_path())) EXPECT_EQ(entry.path(), first.path);
  {
    Database copy(first.path, OpenMode::kInspect);
    EXPECT_EQ(copy.integrity_check(), "ok");
    EXPECT_EQ(count(copy, "SELECT COUNT(*) FROM documents"), 4);
  }
  // The next backup replaces it; the old file's bytes are overwritten, not just unlinked.
  const int old_fd = ::open(first.path.c_str(), O_RDONLY);
  ASSERT_GE(old_fd, 0);
  make_backup(d);
  std::string old_bytes(static_cast<size_t>(first.bytes), '\x01');
  ASSERT_EQ(::pread(old_fd, old_bytes.data(), old_bytes.size(), 0), static_cast<ssize_t>(old_bytes.size()));
  ::close(old_fd);
  EXPECT_EQ(old_bytes, std::string(old_bytes.size(), '\0'));
}

TEST(Backup, ForgettingAUserReplacesTheBackupWithoutThem) {
  TempHome home("backup_forget");
  fill(home, 5);
  const fs::path db = database_path(home.path());
  {
    Database d(db);
    make_backup(d);
    Database copy(backup_path(db), OpenMode::kInspect);
    EXPECT_EQ(count(copy, "SELECT COUNT(*) FROM documents"), 5);
  }
  Database d(db);
  forget_user(d, home.path(), "ann", "test");
  Database copy(backup_path(db), OpenMode::kInspect);
  EXPECT_EQ(count(copy, "SELECT COUNT(*) FROM documents"), 0);
  EXPECT_EQ(count(copy, "SELECT COUNT(*) FROM users"), 0);
}

TEST(Doctor, NamesAMissingOrAlteredSealedFileAndADamagedRecordAndNothingElse) {
  TempHome home("doctor");
  fill(home, 6);
  auto v = home.open();
  const int64_t ann = UserStore(v->db()).get("ann").id;
  AdapterRegistry registry(v->db(), v->keyring(), v->home());
  AdapterRecord meta;
  meta.user_id = ann;
  meta.name = "style";
  meta.method = "lora";
  meta.rank = 4;
  meta.targets = {"q_proj"};
  meta.base_fingerprint = "sha256:x";
  const AdapterRecord a1 = registry.add(meta, "ADAPTER ONE");
  const AdapterRecord a2 = registry.add(meta, "ADAPTER TWO");
  HomeHealth healthy = check_home(home.path());
  EXPECT_TRUE(healthy.healthy());
  EXPECT_EQ(healthy.sealed_files, 2);

  fs::remove(home.path() / a1.file_path);
  std::string bytes = read_file(home.path() / a2.file_path);
  bytes[bytes.size() / 2] ^= 1;
  write_file_atomic(home.path() / a2.file_path, bytes);
  // One document's ciphertext altered in place.
  std::string sealed;
  {
    Statement s = v->db().prepare("SELECT sealed FROM documents WHERE id = 3");
    ASSERT_TRUE(s.step());
    sealed = s.column_blob(0);
  }
  sealed[sealed.size() / 2] ^= 0x10;
  v->db().prepare("UPDATE documents SET sealed = ?1 WHERE id = 3").bind_blob(1, sealed).run();

  HomeHealth h = check_home(home.path());
  EXPECT_TRUE(h.database_ok());  // the file is sound: the damage is in records
  ASSERT_EQ(h.file_problems.size(), 2u);
  EXPECT_TRUE(contains(h.file_problems[0], "adapter " + std::to_string(a1.id)) && contains(h.file_problems[0], "missing"));
  EXPECT_TRUE(contains(h.file_problems[1], "adapter " + std::to_string(a2.id)) && contains(h.file_problems[1], "SHA-256"));
  verify_records(v->db(), v->keyring(), h);
  ASSERT_EQ(h.record_problems.size(), 3u);  // the document and the two adapter files
  EXPECT_TRUE(contains(h.record_problems[0], "documents record 3 of user " + std::to_string(ann) + " is damaged"))
      << h.record_problems[0];
  EXPECT_EQ(h.records_opened, 5);  // the other five documents
  EXPECT_FALSE(h.healthy());
}

TEST(Ingest, EmptyOrBlankFilesAreRefusedAndStoreNothing) {
  TempHome home("ingest_empty");
  auto v = home.open();
  IngestOptions options;
  options.user = "ann";
  const fs::path empty = home.file("empty.txt", "");
  const fs::path blank_doc = home.file("blank.md", " \n\t\n");
  const fs::path blank_jsonl = home.file("blank.jsonl", "\n   \n");
  for (const auto& files : {std::vector<fs::path>{empty}, std::vector<fs::path>{empty, blank_doc, blank_jsonl}}) {
    Error e = error_of([&] { ingest_files(v->db(), v->keyring(), files, options); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(contains(e.what(), "nothing to ingest")) << e.what();
  }
  EXPECT_FALSE(UserStore(v->db()).find("ann"));  // no empty user
  // One blank file among others is skipped and counted.
  const IngestReport r = ingest_files(v->db(), v->keyring(), {blank_doc, home.file("real.txt", "some words")}, options);
  EXPECT_EQ(r.documents_added, 1u);
  EXPECT_EQ(r.empty, 1u);
}

// Runs `f` in a child process as the unprivileged user 65534 when this process is root (root
// ignores file modes); returns its exit code.
int as_unprivileged(const std::function<int()>& f) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) _exit(99);
    _exit(f());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

TEST(ReadOnly, AReadOnlyDatabaseOrFolderIsNamedAsSuch) {
  TempHome home("read_only");
  fill(home, 1);
  const fs::path db = database_path(home.path());
  settle(db);
  fs::remove(db.string() + "-shm");
  // Owned by the user the check runs as, then made read-only.
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(home.path().c_str(), 65534, 65534), 0);
    ASSERT_EQ(::chown(db.c_str(), 65534, 65534), 0);
    ::chmod(home.path().parent_path().c_str(), 0755);
  }
  auto opened_with = [&](const std::string& expected) {
    return as_unprivileged([&] {
      try {
        Database d(db);
        return 1;
      } catch (const Error& e) {
        const std::string what = e.what();
        const bool ok = e.code() == ErrorCode::kIo && contains(what, expected) && contains(what, "is read-only") &&
                        contains(what, "chmod u+w");
        if (!ok) std::fprintf(stderr, "%s\n", what.c_str());
        return ok ? 0 : 2;
      }
    });
  };
  ASSERT_EQ(::chmod(db.c_str(), 0400), 0);
  EXPECT_EQ(opened_with("database " + db.string()), 0);
  ASSERT_EQ(::chmod(db.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(home.path().c_str(), 0500), 0);
  EXPECT_EQ(opened_with("folder " + home.path().string()), 0);
  ::chmod(home.path().c_str(), 0700);
}

}  // namespace
