// The adapter registry and job store: versions, sealed files that open only for their own
// record, checkpoints, metrics and statuses.
#include "privacy/sealed_file.h"
#include "storage/adapter_registry.h"
#include "storage/database.h"
#include "storage/job_store.h"
#include "storage/sealed_blob_file.h"
#include "storage/user_store.h"
#include "test_home.h"

using namespace hearth;
using namespace hearth::storage;
using namespace hearth::storage::testing;

namespace {

AdapterRecord meta_for(int64_t user_id) {
  AdapterRecord m;
  m.user_id = user_id;
  m.name = "my 'style'";
  m.method = "dora";
  m.rank = 16;
  m.targets = {"q_proj", "v_proj"};
  m.base_fingerprint = "sha256:abc";
  m.metrics = Json{{"eval_loss", 2.5}};
  return m;
}

}  // namespace

TEST(AdapterRegistry, VersionsSealedFilesAndTamperDetection) {
  TempHome home("adapters");
  auto v = home.open();
  int64_t ann = UserStore(v->db()).create("ann", privacy::RedactionMode::kMask, v->keyring().master()).id;
  int64_t bob = UserStore(v->db()).create("bob", privacy::RedactionMode::kMask, v->keyring().master()).id;
  AdapterRegistry reg(v->db(), v->keyring(), v->home());
  AdapterRecord a1 = reg.add(meta_for(ann), "ADAPTER ONE");
  AdapterRecord a2 = reg.add(meta_for(ann), "ADAPTER TWO");
  EXPECT_EQ(a1.version, 1);
  EXPECT_EQ(a2.version, 2);
  EXPECT_EQ(reg.latest(ann, "my 'style'")->id, a2.id);
  EXPECT_FALSE(reg.latest(bob, "my 'style'"));
  AdapterRecord got = reg.get(ann, a1.id);
  EXPECT_EQ(got.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(got.metrics["eval_loss"], 2.5);
  EXPECT_EQ(reg.open_file(got), "ADAPTER ONE");
  EXPECT_TRUE(files_containing(home.path(), "ADAPTER").empty());
  // One flipped byte in the file: damage to that record, named.
  fs::path file = home.path() / got.file_path;
  std::string bytes = read_file(file);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 1;
  write_file_atomic(file, flipped);
  Error e = error_of([&] { reg.open_file(got); });
  EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  EXPECT_TRUE(contains(e.what(), "adapter_file record " + std::to_string(a1.id) + " of user")) << e.what();
  EXPECT_TRUE(contains(e.what(), "is damaged")) << e.what();
  // Another record's file put in its place: also damage to this record.
  write_file_atomic(file, read_file(home.path() / a2.file_path));
  EXPECT_EQ(error_of([&] { reg.open_file(got); }).code(), ErrorCode::kCorruptFile);
  write_file_atomic(file, bytes);
  EXPECT_EQ(reg.open_file(got), "ADAPTER ONE");
  reg.set_metrics(a1.id, Json{{"eval_loss", 1.0}});
  EXPECT_EQ(reg.get(ann, a1.id).metrics["eval_loss"], 1.0);
  EXPECT_TRUE(reg.remove(ann, a1.id));
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(reg.list(ann).size(), 1u);
  EXPECT_EQ(error_of([&] { reg.get(bob, a2.id); }).code(), ErrorCode::kNotFound);
}

TEST(JobStore, StatusCheckpointsAndMetrics) {
  TempHome home("jobs");
  auto v = home.open();
  int64_t ann = UserStore(v->db()).create("ann", privacy::RedactionMode::kMask, v->keyring().master()).id;
  JobStore jobs(v->db(), v->keyring(), v->home());
  JobRecord job = jobs.create(ann, "train", Json{{"lr", 1e-3}});
  EXPECT_EQ(job.status, "queued");
  jobs.set_status(job.id, "running");
  EXPECT_EQ(jobs.get(job.id).status, "running");
  EXPECT_THROW(jobs.set_status(job.id, "exploded"), Error);
  jobs.add_checkpoint(job.id, 10, "state at 10");
  CheckpointRecord c20 = jobs.add_checkpoint(job.id, 20, "state at 20");
  auto latest = jobs.latest_checkpoint(job.id);
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->step, 20);
  EXPECT_EQ(jobs.open_checkpoint(*latest), "state at 20");
  EXPECT_EQ(latest->sha256, c20.sha256);
  EXPECT_EQ(latest->seal_nonce, c20.seal_nonce);
  EXPECT_EQ(latest->seal_nonce.size(), 48u);  // 24 bytes, hex
  jobs.add_metric(job.id, 1, "loss", 3.0);
  jobs.add_metric(job.id, 2, "loss", 2.0);
  auto m = jobs.metrics(job.id);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1].value, 2.0);
  EXPECT_EQ(jobs.list(ann).size(), 1u);
  EXPECT_TRUE(files_containing(home.path(), "state at").empty());
}

// An older, validly sealed version of the same record id put back in place of the file (what a
// reused row id or a restored backup would leave) authenticates, but is not the recorded
// version: the seal's nonce tells, and for rows from before schema 3 the SHA-256 does.
TEST(AdapterRegistry, AnOlderSealOfTheSameRecordIsRefused) {
  TempHome home("reseal");
  auto v = home.open();
  int64_t ann = UserStore(v->db()).create("ann", privacy::RedactionMode::kMask, v->keyring().master()).id;
  AdapterRegistry reg(v->db(), v->keyring(), v->home());
  const AdapterRecord a = reg.add(meta_for(ann), "CURRENT");
  const fs::path file = home.path() / a.file_path;
  const std::string current = read_file(file);
  const privacy::RecordRef where{ann, "adapter_file", a.id};
  write_sealed_blob(file, "OLDER", v->keyring().user_keys(ann).seal, where);
  ASSERT_EQ(privacy::open_sealed_file(file, v->keyring().user_keys(ann).seal, where), "OLDER");
  EXPECT_EQ(error_of([&] { reg.open_file(reg.get(ann, a.id)); }).code(), ErrorCode::kCorruptFile);
  // A row without a nonce: checked by its SHA-256, both ways.
  v->db().prepare("UPDATE adapters SET seal_nonce = '' WHERE id = ?1").bind(1, a.id).run();
  const AdapterRecord legacy = reg.get(ann, a.id);
  ASSERT_TRUE(legacy.seal_nonce.empty());
  EXPECT_EQ(error_of([&] { reg.open_file(legacy); }).code(), ErrorCode::kCorruptFile);
  write_file_atomic(file, current);
  EXPECT_EQ(reg.open_file(legacy), "CURRENT");
  EXPECT_EQ(reg.open_file(a), "CURRENT");
}
