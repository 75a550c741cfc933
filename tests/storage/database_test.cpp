// The database itself: schema and migrations, the pragmas Hearth depends on, file modes,
// unlocking with the right and wrong keys, and SQL metacharacters in names and contents.
#include <sys/stat.h>

#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/migrations.h"
#include "storage/record_store.h"
#include "storage/user_data.h"
#include "storage/user_store.h"
#include "test_home.h"

using namespace hearth;
using namespace hearth::storage;
using namespace hearth::storage::testing;

namespace {

std::string pragma(Database& db, const char* sql) {
  Statement s = db.prepare(sql);
  s.step();
  return s.column_text(0);
}

}  // namespace

TEST(Database, CreatesSchemaWithPragmasAndPrivateModes) {
  TempHome home("schema");
  auto vault = home.open();
  Database& db = vault->db();
  EXPECT_EQ(db.schema_version(), latest_schema_version());
  EXPECT_EQ(pragma(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma(db, "PRAGMA foreign_keys"), "1");
  EXPECT_EQ(pragma(db, "PRAGMA secure_delete"), "1");
  EXPECT_EQ(pragma(db, "PRAGMA busy_timeout"), "5000");
  for (const char* table : {"users", "documents", "examples", "adapters", "jobs", "checkpoints", "metrics", "audit_log", "key_config"}) {
    Statement s = db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1");
    s.bind_text(1, table);
    s.step();
    EXPECT_EQ(s.column_int(0), 1) << table;
  }
  struct stat st {};
  ASSERT_EQ(::stat(home.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(database_path(home.path()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  EXPECT_EQ(db.integrity_check(), "ok");
}

TEST(Database, MigrationsRunOnceAndRefuseNewerSchemas) {
  TempHome home("migrate");
  { auto v = home.open(); }
  {
    Database db(database_path(home.path()));  // reopening applies nothing new
    Statement s = db.prepare("SELECT COUNT(*) FROM schema_migrations");
    s.step();
    EXPECT_EQ(s.column_int(0), latest_schema_version());
    db.prepare("INSERT INTO schema_migrations (version, applied) VALUES (?1, 0)").bind(1, int64_t{999}).run();
  }
  Error e = error_of([&] { Database db(database_path(home.path())); });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(contains(e.what(), "999")) << e.what();
}

TEST(Database, NotADatabaseIsACorruptFile) {
  TempHome home("notadb");
  prepare_home(home.path());
  write_file_atomic(database_path(home.path()), std::string(4096, 'x'));
  Error e = error_of([&] { Database db(database_path(home.path())); });
  EXPECT_TRUE(e.code() == ErrorCode::kCorruptFile || e.code() == ErrorCode::kIo) << e.what();
}

TEST(Database, WrongPassphraseSaysSoAndLosesNothing) {
  TempHome home("wrongpass");
  int64_t user_id = 0;
  {
    auto v = home.open();
    Transaction tx(v->db());
    UserRecord u = UserStore(v->db()).create("ann", privacy::RedactionMode::kOff, v->keyring().master());
    user_id = u.id;
    RecordStore(v->db(), v->keyring()).add_document(u.id, "keep me", "a.txt");
    tx.commit();
  }
  Error e = error_of([&] { home.open("not the passphrase"); });
  EXPECT_EQ(e.code(), ErrorCode::kAuthentication);
  EXPECT_TRUE(contains(e.what(), "wrong passphrase")) << e.what();
  Error kind = error_of([&] { Vault(home.path(), privacy::MasterKeySource::from_raw_key(std::string(32, 'k'))); });
  EXPECT_EQ(kind.code(), ErrorCode::kAuthentication);
  EXPECT_TRUE(contains(kind.what(), "passphrase")) << kind.what();
  auto v = home.open();
  UserData data = load_user_data(v->db(), v->keyring(), "ann");
  ASSERT_EQ(data.documents.size(), 1u);
  EXPECT_EQ(data.documents[0], "keep me");
  EXPECT_EQ(data.user_id, user_id);
  EXPECT_EQ(v->db().integrity_check(), "ok");
}

TEST(Database, RawHostKeyWorksAndWrongRawKeyIsRefused) {
  TempHome home("rawkey");
  std::string key(32, '\x11');
  { Vault v(home.path(), privacy::MasterKeySource::from_raw_key(key)); }
  { Vault v(home.path(), privacy::MasterKeySource::from_raw_key(key)); }
  Error e = error_of([&] { Vault v(home.path(), privacy::MasterKeySource::from_raw_key(std::string(32, '\x12'))); });
  EXPECT_EQ(e.code(), ErrorCode::kAuthentication);
  EXPECT_TRUE(contains(e.what(), "wrong key")) << e.what();
}

TEST(Database, SqlMetacharactersInNamesAndContentsAreJustData) {
  TempHome home("sqlmeta");
  auto v = home.open();
  const std::string evil = "Robert'); DROP TABLE users;-- \"x\" % _ \\ ;";
  const std::string content = "O'Brien said \"hi\"; DELETE FROM documents; -- ' OR '1'='1";
  {
    Transaction tx(v->db());
    UserRecord u = UserStore(v->db()).create(evil, privacy::RedactionMode::kOff, v->keyring().master());
    RecordStore(v->db(), v->keyring()).add_document(u.id, content, evil + ".txt");
    UserStore(v->db()).create("Robert", privacy::RedactionMode::kOff, v->keyring().master());
    tx.commit();
  }
  UserData data = load_user_data(v->db(), v->keyring(), evil);
  ASSERT_EQ(data.documents.size(), 1u);
  EXPECT_EQ(data.documents[0], content);
  EXPECT_EQ(UserStore(v->db()).list().size(), 2u);
  EXPECT_EQ(UserStore(v->db()).get(evil).name, evil);
  RecordStore records(v->db(), v->keyring());
  EXPECT_EQ(records.open_document_source(data.user_id, records.list(data.user_id).at(0).id), evil + ".txt");
  EXPECT_EQ(error_of([&] { UserStore(v->db()).get("Robert' OR '1'='1"); }).code(), ErrorCode::kNotFound);
  EXPECT_EQ(error_of([&] { UserStore(v->db()).create(std::string("a\nb"), privacy::RedactionMode::kOff, v->keyring().master()); }).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(v->db().integrity_check(), "ok");
}
