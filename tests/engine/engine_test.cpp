// The engine end to end on the real stories260K model and real Austen text, in a real home
// (SQLite file, sealed files, raw keystore key): ingest, a job run in slices (by steps, by a
// cancel flag from another thread, by the device policy), bitwise equal to an uninterrupted
// job, registration and retention, serving the adapter, and recovery from a dead runner.
#include <gtest/gtest.h>

#include <thread>

#include "core/atomic_file.h"
#include "engine/engine.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/job_store.h"
#include "serving_fixtures.h"
#include "test_helpers.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

const std::string kKey(32, '\x42');

engine::EngineOptions options_for(const fs::path& home) {
  engine::EngineOptions o;
  o.home = home;
  o.key = privacy::MasterKeySource::from_raw_key(kKey);
  return o;
}


// A short job: 8 steps of 4 rows of 64 positions over ~25 kB of Emma.
engine::JobSpec small_job(const std::string& user) {
  engine::JobSpec s;
  s.user = user;
  s.training.rank = 4;
  s.training.steps = 8;
  s.training.seq_len = 64;
  s.training.batch = 4;
  s.training.lr = 5e-3;
  s.training.dropout = 0.1;  // random draws inside steps: resumes must replay them exactly
  s.training.seed = 11;
  s.training.eval_max_rows = 8;
  return s;
}

storage::IngestItem emma_slice() {
  std::string text = read_file(asset_path("data/jane_austen/emma.txt"));
  text.resize(25000);
  return {storage::IngestItem::Kind::kDocument, "emma", text.substr(0, text.rfind('\n') + 1)};
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { home_ = testing::fresh_temp_dir("engine"); }
  void TearDown() override { fs::remove_all(home_); }

  // A fresh engine over the same home with stories260K nf4 and the Emma slice for `user`.
  std::unique_ptr<engine::Engine> open(const std::string& user = "ann") {
    auto e = std::make_unique<engine::Engine>(options_for(home_));
    e->load_base(testing::stories_nf4_spec());
    if (!user.empty() && e->users().empty()) e->ingest_texts(user, {emma_slice()});
    return e;
  }

  // Greedy text of the user's newest adapter: equal adapters give equal text and logits.
  static std::string greedy(engine::Engine& e, const std::string& user) {
    engine::GenerateRequest r;
    r.prompt = "Emma was";
    r.options.max_tokens = 24;
    r.options.sampling.temperature = 0;
    r.user = user;
    r.adapter = "default";
    return e.generate(r).text;
  }

  fs::path home_;
};

TEST_F(EngineTest, JobInSlicesEqualsAnUninterruptedJobBitwise) {
  auto e = open();
  // Uninterrupted, as user "ann".
  const int64_t whole = e->submit_job(small_job("ann"));
  const engine::SliceResult one = e->run_slice(whole, {});
  ASSERT_EQ(one.outcome, "finished") << one.reason;
  EXPECT_EQ(one.steps_done, 8);
  const std::string whole_bundle_text = greedy(*e, "ann");

  // The same data for "bob", in slices: by steps, then by a cancel flag set from another thread.
  e->ingest_texts("bob", {emma_slice()});
  const int64_t sliced = e->submit_job(small_job("bob"));
  engine::SliceBudget three_steps;
  three_steps.steps = 3;
  engine::SliceResult r = e->run_slice(sliced, three_steps);
  EXPECT_EQ(r.outcome, "paused");
  EXPECT_EQ(r.steps_done, 3);
  EXPECT_EQ(e->job(sliced).status, "paused");
  EXPECT_EQ(e->job(sliced).progress.step, 3);

  std::atomic<bool> cancel{false};
  engine::SliceBudget cancellable;
  cancellable.cancelled = [&cancel] { return cancel.load(); };
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    cancel = true;
  });
  r = e->run_slice(sliced, cancellable);
  stopper.join();
  if (r.outcome == "paused") {
    EXPECT_GE(r.steps_done, 3);
    EXPECT_LT(r.stop_latency_seconds, 1.0);
    r = e->run_slice(sliced, {});
  }
  ASSERT_EQ(r.outcome, "finished") << r.reason;
  ASSERT_TRUE(r.adapter.has_value());
  EXPECT_EQ(r.adapter->version, 1);

  // Same seed, same data, same steps: the sliced adapter is the uninterrupted one, bit for bit,
  // so its greedy text is too; and both differ from the bare base.
  EXPECT_EQ(greedy(*e, "bob"), whole_bundle_text);
  const storage::AdapterRecord a = e->adapter_versions("ann", "default").at(0);
  const storage::AdapterRecord b = e->adapter_versions("bob", "default").at(0);
  EXPECT_EQ(a.metrics["train_loss"], b.metrics["train_loss"]);
  EXPECT_EQ(a.metrics["eval_loss_after"], b.metrics["eval_loss_after"]);
  engine::GenerateRequest bare;
  bare.prompt = "Emma was";
  bare.options.max_tokens = 24;
  bare.options.sampling.temperature = 0;
  EXPECT_NE(e->generate(bare).text, whole_bundle_text);

  // Done: progress, curve, no checkpoints left, integrity intact.
  const engine::JobInfo info = e->job(sliced);
  EXPECT_EQ(info.status, "done");
  EXPECT_EQ(info.adapter_version, 1);
  EXPECT_GE(info.progress.slices, 2);
  EXPECT_LT(info.progress.eval_loss_after, info.progress.eval_loss_before);
  bool has_eval = false;
  for (const storage::MetricPoint& p : e->job_metrics(sliced)) has_eval |= p.name == "eval_loss";
  EXPECT_TRUE(has_eval);
  storage::Database db(storage::database_path(home_));
  EXPECT_EQ(db.integrity_check(), "ok");
  storage::Statement s = db.prepare("SELECT COUNT(*) FROM checkpoints");
  s.step();
  EXPECT_EQ(s.column_int(0), 0);
}

TEST_F(EngineTest, PolicyKeepsAJobWaitingUntilTheDeviceAllows) {
  auto e = open();
  const int64_t id = e->submit_job(small_job("ann"));
  engine::DeviceState state;
  state.charging = false;
  state.battery_percent = 31;
  engine::SliceBudget budget;
  budget.device = [&] { return state; };
  budget.steps = 2;
  engine::SliceResult r = e->run_slice(id, budget);
  EXPECT_EQ(r.outcome, "waiting");
  EXPECT_NE(r.reason.find("31%"), std::string::npos) << r.reason;
  EXPECT_EQ(e->job(id).status, "queued");
  EXPECT_FALSE(e->run_next(budget).has_value());

  state.charging = true;
  state.screen_on = true;
  EXPECT_NE(e->run_slice(id, budget).reason.find("screen"), std::string::npos);
  state.screen_on = false;
  r = e->run_slice(id, budget);
  EXPECT_EQ(r.outcome, "paused");
  EXPECT_EQ(r.steps_done, 2);

  // The device gets hot during the slice: it stops after the step that saw it.
  budget.steps = 0;
  int64_t reads = 0;
  budget.device = [&] {
    engine::DeviceState s;
    if (++reads > 2) s.temperature_c = 47;
    return s;
  };
  r = e->run_slice(id, budget);
  EXPECT_EQ(r.outcome, "paused");
  EXPECT_NE(r.reason.find("47"), std::string::npos) << r.reason;
  EXPECT_LT(r.steps_done, 8);
}

TEST_F(EngineTest, FinishedJobsKeepOnlyTheNewestVersionsAndServingFollowsPins) {
  auto e = open();
  engine::JobSpec spec = small_job("ann");
  spec.training.steps = 2;
  spec.training.keep_versions = 2;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(e->run_slice(e->submit_job(spec), {}).outcome, "finished");
  std::vector<int64_t> versions;
  for (const storage::AdapterRecord& a : e->adapter_versions("ann", "default")) versions.push_back(a.version);
  EXPECT_EQ(versions, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(e->load_adapter("ann", "default"), "ann/default@v3");
  e->pin_adapter("ann", "default", 2);
  EXPECT_EQ(e->load_adapter("ann", "default"), "ann/default@v2");
  EXPECT_THROW(e->pin_adapter("ann", "default", 1), Error);  // erased
  // Files of erased versions are gone; only the two kept adapters' files remain.
  int64_t files = 0;
  for (const auto& f : fs::recursive_directory_iterator(home_ / "users")) files += f.is_regular_file();
  EXPECT_EQ(files, 2);
}

TEST_F(EngineTest, AJobLeftRunningByADeadProcessIsPausedAndOrphanFilesSwept) {
  int64_t id = 0;
  {
    auto e = open();
    id = e->submit_job(small_job("ann"));
    engine::SliceBudget two;
    two.steps = 2;
    ASSERT_EQ(e->run_slice(id, two).outcome, "paused");
  }
  {  // What a SIGKILL mid-slice leaves: the row says running under a process that is gone,
     // and a sealed file whose row never committed.
    storage::Database db(storage::database_path(home_));
    db.prepare("UPDATE jobs SET status = 'running', owner_pid = 999999, owner_start = 1 WHERE id = ?1").bind(1, id).run();
    write_file_atomic(home_ / "users" / "1" / "checkpoint-999.sealed", "HRTHSEAL half a checkpoint");
  }
  auto e = open();
  EXPECT_EQ(e->job(id).status, "paused");
  EXPECT_FALSE(fs::exists(home_ / "users" / "1" / "checkpoint-999.sealed"));
  const engine::SliceResult r = e->run_slice(id, {});
  EXPECT_EQ(r.outcome, "finished");
  EXPECT_EQ(r.steps_done, 8);
}

TEST_F(EngineTest, BadJobsAreRefusedBeforeTheyQueue) {
  auto e = open();
  engine::JobSpec spec = small_job("ann");
  spec.training.rank = 0;
  EXPECT_THROW(e->submit_job(spec), Error);
  spec = small_job("nobody");
  EXPECT_THROW(e->submit_job(spec), Error);
  spec = small_job("ann");
  spec.training.targets = "q,nonsense";
  EXPECT_THROW(e->submit_job(spec), Error);
  spec = small_job("ann");
  spec.training.max_memory_mb = 64;  // far below what even one row needs
  const int64_t id = e->submit_job(spec);
  try {
    e->run_slice(id, {});
    ADD_FAILURE() << "a job that cannot fit its memory ceiling ran";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("max_memory_mb"), std::string::npos) << err.what();
  }
  EXPECT_EQ(e->job(id).status, "failed");
  EXPECT_TRUE(e->jobs("ann").size() == 1);
}

TEST_F(EngineTest, ALockedEngineListsAndForgetsButCannotDecrypt) {
  { open(); }
  engine::EngineOptions o;
  o.home = home_;
  engine::Engine locked(o);
  EXPECT_EQ(locked.users().size(), 1u);
  EXPECT_EQ(locked.count_data("ann", storage::RecordKind::kDocument), 1);
  EXPECT_THROW(locked.show_document("ann", 1), Error);
  EXPECT_EQ(locked.forget("ann").documents, 1);
  EXPECT_TRUE(locked.users().empty());
}

}  // namespace
}  // namespace hearth
