// Forgetting a user: rows, files and key are gone; copies of ciphertext taken before cannot
// be opened by the installation afterwards; other users are untouched; no plaintext remains.
#include "storage/adapter_registry.h"
#include "storage/audit_log.h"
#include "storage/database.h"
#include "storage/erasure.h"
#include "storage/ingest.h"
#include "storage/job_store.h"
#include "storage/record_store.h"
#include "storage/user_data.h"
#include "storage/user_store.h"
#include "privacy/aead.h"
#include "test_home.h"

using namespace hearth;
using namespace hearth::storage;
using namespace hearth::storage::testing;

TEST(Erasure, ForgetRemovesRowsFilesAndKeyForGood) {
  TempHome home("forget");
  const std::string canary = "FORGET-CANARY-31415-ostrich";
  fs::path backup = home.path().string() + "_backup";
  fs::remove_all(backup);
  std::string old_sealed, old_wrapped;
  int64_t ann_id = 0, doc_id = 0;
  {
    auto v = home.open();
    IngestOptions opt;
    opt.user = "ann";
    ingest_files(v->db(), v->keyring(), {home.file("a.txt", "ann says " + canary)}, opt);
    opt.user = "bob";
    ingest_files(v->db(), v->keyring(), {home.file("b.txt", "bob's own text")}, opt);
    ann_id = UserStore(v->db()).get("ann").id;
    AdapterRecord meta;
    meta.user_id = ann_id;
    meta.name = "style";
    meta.method = "lora";
    meta.rank = 8;
    meta.targets = {"q_proj"};
    meta.base_fingerprint = "stories260K";
    AdapterRegistry(v->db(), v->keyring(), v->home()).add(meta, "weights " + canary);
    JobStore jobs(v->db(), v->keyring(), v->home());
    JobRecord job = jobs.create(ann_id, "train", Json{{"steps", 10}});
    jobs.add_checkpoint(job.id, 5, "checkpoint " + canary);
    jobs.add_metric(job.id, 5, "loss", 1.5);
    doc_id = RecordStore(v->db(), v->keyring()).list(ann_id).at(0).id;
    Statement s = v->db().prepare("SELECT d.sealed, u.wrapped_key FROM documents d JOIN users u ON u.id = d.user_id WHERE d.id = ?1");
    s.bind(1, doc_id);
    ASSERT_TRUE(s.step());
    old_sealed = s.column_blob(0);
    old_wrapped = s.column_blob(1);
  }
  fs::copy(home.path(), backup, fs::copy_options::recursive);  // a copy of every file, taken before
  ForgetReport report;
  {
    auto v = home.open();
    report = forget_user(v->db(), v->home(), "ann", "test");
    EXPECT_EQ(report.documents, 1);
    EXPECT_EQ(report.adapters, 1);
    EXPECT_EQ(report.checkpoints, 1);
    EXPECT_EQ(report.files_removed, 2);
    for (const char* table : {"documents", "examples", "adapters", "jobs", "metrics", "checkpoints"}) {
      std::string sql = std::string("SELECT COUNT(*) FROM ") + table;  // fixed table names only
      Statement s = v->db().prepare(sql.c_str());
      s.step();
      EXPECT_EQ(s.column_int(0), std::string(table) == "documents" ? 1 : 0) << table;  // bob's document stays
    }
    EXPECT_FALSE(UserStore(v->db()).find("ann"));
    EXPECT_EQ(load_user_data(v->db(), v->keyring(), "bob").documents.at(0), "bob's own text");
    // The ciphertext copied before cannot be opened: the user's key is gone.
    Error e = error_of([&] { v->keyring().user_keys(ann_id); });
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    // Even a recreated user with the same name gets a new key that does not open the old data.
    UserRecord again = UserStore(v->db()).create("ann", privacy::RedactionMode::kMask, v->keyring().master());
    Error e2 = error_of([&] { privacy::open(v->keyring().user_keys(again.id).seal, old_sealed, {again.id, "documents", doc_id}); });
    EXPECT_EQ(e2.code(), ErrorCode::kAuthentication);
    auto audit = AuditLog(v->db()).recent(10);
    ASSERT_FALSE(audit.empty());
    EXPECT_EQ(audit[0].action, "forget");
    EXPECT_EQ(audit[0].user_id, ann_id);
    EXPECT_EQ(v->db().integrity_check(), "ok");
  }
  // No byte of the old wrapped key or ciphertext survives in the live files (secure_delete,
  // WAL truncation and VACUUM), and the user's folder of sealed files is gone.
  EXPECT_TRUE(files_containing(home.path(), old_wrapped.substr(0, 40)).empty());
  EXPECT_TRUE(files_containing(home.path(), old_sealed.substr(0, 40)).empty());
  EXPECT_TRUE(files_containing(home.path(), canary).empty());
  EXPECT_FALSE(fs::exists(home.path() / "users" / std::to_string(ann_id)));
  EXPECT_FALSE(files_containing(backup, old_wrapped.substr(0, 40)).empty());  // the scan does find it in the copy
  fs::remove_all(backup);
}

TEST(Erasure, UnknownUserIsNotFound) {
  TempHome home("forget404");
  auto v = home.open();
  EXPECT_EQ(error_of([&] { forget_user(v->db(), v->home(), "nobody", "test"); }).code(), ErrorCode::kNotFound);
}
