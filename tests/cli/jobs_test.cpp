// Background jobs through the real `hearth` binary: 20 SIGKILLs at random moments of a job, each
// followed by a resume, end with an adapter bitwise equal to an uninterrupted job's, an intact
// database, no orphan files and no job "running" for a dead process; the daemon waits for the
// device, runs, and stops on SIGTERM with a checkpoint; a process serving a user's adapters
// while another registers new versions of them sees no torn reads and no "database is locked".
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <random>
#include <thread>

#include "adapters/adapter.h"
#include "cli_runner.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "engine/engine.h"
#include "storage/database.h"
#include "storage/hearth_home.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::run_hearth;

class JobsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("jobs_cli");
    home_ = dir_ / "home";
    std::string text = read_file(asset_path("data/jane_austen/emma.txt"));
    text.resize(30000);
    write_file_atomic(dir_ / "emma.txt", text.substr(0, text.rfind('\n') + 1));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> env() const { return {"HEARTH_PASSPHRASE=correct-horse"}; }
  std::vector<std::string> home_args(std::vector<std::string> a) const {
    a.insert(a.end(), {"--home", home_.string(), "--threads", "1"});
    return a;
  }
  void ingest(const std::string& user) {
    auto r = run_hearth(home_args({"ingest", "--user", user, (dir_ / "emma.txt").string()}), env());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  int64_t submit(const std::string& user, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = home_args({"jobs", "submit", "--user", user, "--model", testing::stories260k_dir().string(),
                                            "--quant", "nf4", "--rank", "4", "--seq-len", "64", "--batch", "4", "--lr",
                                            "5e-3", "--seed", "9", "--checkpoint-every", "2", "--json"});
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = run_hearth(a, env());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out.substr(r.out.rfind('{')))["job_id"].get<int64_t>();
  }
  std::string sql(const std::string& query) {
    storage::Database db(storage::database_path(home_));
    storage::Statement s = db.prepare(query.c_str());
    return s.step() ? s.column_text(0) : "";
  }
  // The tensors of `user`'s newest adapter, decrypted in this process.
  std::vector<at::Tensor> adapter_of(const std::string& user) {
    engine::EngineOptions o;
    o.home = home_;
    o.key = privacy::MasterKeySource::from_passphrase("correct-horse");
    engine::Engine e(o);
    engine::BaseModelSpec base;
    base.path = testing::stories260k_dir().string();
    base.quant = "nf4";
    e.load_base(base);
    std::vector<at::Tensor> out;
    for (const auto& [name, t] : e.loaded_adapter(e.load_adapter(user, "default"))->named_parameters())
      out.push_back(t.detach().clone());
    return out;
  }

  fs::path dir_, home_;
};

TEST_F(JobsCli, TwentySigkillsAndResumesGiveTheUninterruptedAdapterBitwise) {
  ingest("straight");
  ingest("killed");
  // Long enough that a fast, quiet machine is still training after several kills: at 120 steps
  // an AVX-512 VM finished the job within three slices (40 steps/s), before three kills had
  // landed after a checkpoint.
  const std::vector<std::string> long_job = {"--steps", "300"};
  const int64_t straight = submit("straight", long_job);
  const int64_t killed = submit("killed", long_job);
  auto whole = run_hearth(home_args({"jobs", "run", "--job", std::to_string(straight)}), env());
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  // The moments: mostly while it trains (from the start of its slice, which the log announces,
  // plus up to 1.5 s), and every fourth one during start-up (loading, decrypting, resuming).
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> moment_ms(0, 1500);
  const fs::path log = dir_ / "killed.log";
  const auto slices_started = [&] {
    const std::string text = fs::exists(log) ? testing::slurp(log) : "";
    int64_t n = 0;
    for (size_t at = 0; (at = text.find("job " + std::to_string(killed) + ": ", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  const std::string checkpointed_step =
      "SELECT COALESCE(MAX(step), 0) FROM checkpoints WHERE job_id = " + std::to_string(killed);
  int64_t last_step = 0, progressed = 0;
  const auto checkpointed = [&] { return std::stoll(sql(checkpointed_step)); };
  const auto killed_job_done = [&] { return sql("SELECT status FROM jobs WHERE id = " + std::to_string(killed)) == "done"; };
  for (int kill = 0; kill < 20; ++kill) {
    const int64_t before = slices_started();
    const pid_t pid = testing::spawn_hearth(home_args({"jobs", "run", "--job", std::to_string(killed)}), log, env());
    if (kill % 4 != 3) {
      for (int i = 0; i < 600 && slices_started() == before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Every fourth kill first lets a checkpoint land (up to a minute), so the job progresses
    // however slowly a loaded machine trains; the moment after it is random as for the others.
    if (kill % 4 == 1) {
      for (int i = 0; i < 6000 && checkpointed() <= last_step && !killed_job_done(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(moment_ms(rng)));
    ::kill(pid, SIGKILL);
    testing::wait_for(pid);
    if (killed_job_done()) break;
    const int64_t now = checkpointed();
    EXPECT_GE(now, last_step) << "a kill lost work that was already checkpointed";
    progressed += now > last_step;
    last_step = now;
  }
  EXPECT_GE(progressed, 3) << testing::slurp(log);  // the kills landed while it was training
  // The last kill may have come after the job finished; otherwise one more run completes it.
  if (!killed_job_done()) {
    auto rest = run_hearth(home_args({"jobs", "run", "--job", std::to_string(killed), "--json"}), env());
    ASSERT_EQ(rest.exit_code, 0) << rest.err;
  }
  EXPECT_TRUE(killed_job_done());

  const std::vector<at::Tensor> a = adapter_of("straight"), b = adapter_of("killed");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "tensor " << i;
  EXPECT_EQ(sql("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(sql("SELECT COUNT(*) FROM jobs WHERE status = 'running'"), "0");
  EXPECT_EQ(sql("SELECT COUNT(*) FROM checkpoints"), "0");
  // Every sealed file is named by a row: the two adapters, nothing else.
  std::vector<std::string> files;
  for (const auto& f : fs::recursive_directory_iterator(home_ / "users"))
    if (f.is_regular_file()) files.push_back(f.path().filename().string());
  EXPECT_EQ(files.size(), 2u) << ::testing::PrintToString(files);
}

TEST_F(JobsCli, DaemonWaitsForTheDeviceRunsAndStopsOnSigterm) {
  ingest("ann");
  const int64_t id = submit("ann", {"--steps", "400"});
  const fs::path state = dir_ / "device.json";
  write_file_atomic(state, R"({"charging": false, "battery_percent": 20})");
  const fs::path log = dir_ / "daemon.log";
  const pid_t pid = testing::spawn_hearth(
      home_args({"daemon", "--device-state", state.string(), "--poll-seconds", "0.2", "--slice-seconds", "30"}), log, env());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(sql("SELECT status FROM jobs WHERE id = " + std::to_string(id)), "queued") << testing::slurp(log);
  write_file_atomic(state, R"({"charging": true, "battery_percent": 20})");
  std::string step;
  for (int i = 0; i < 150 && (step.empty() || step == "0"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    step = sql("SELECT json_extract(progress, '$.step') FROM jobs WHERE id = " + std::to_string(id));
  }
  ASSERT_FALSE(step.empty() || step == "0") << testing::slurp(log);
  EXPECT_EQ(sql("SELECT status FROM jobs WHERE id = " + std::to_string(id)), "running");
  ::kill(pid, SIGTERM);
  EXPECT_EQ(testing::wait_for(pid), 0) << testing::slurp(log);
  EXPECT_EQ(sql("SELECT status FROM jobs WHERE id = " + std::to_string(id)), "paused") << testing::slurp(log);
  EXPECT_EQ(sql("SELECT COUNT(*) FROM checkpoints WHERE job_id = " + std::to_string(id)), "1");

  // Status from another process, without the key.
  auto status = run_hearth(home_args({"jobs", "status", std::to_string(id), "--json"}));
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const Json j = Json::parse(status.out.substr(status.out.rfind("\n{") + 1));
  EXPECT_EQ(j["status"], "paused");
  EXPECT_GT(j["progress"]["step"].get<int64_t>(), 0);
  EXPECT_GT(j["progress"]["tokens_per_s"].get<double>(), 0);
  EXPECT_NE(j["progress"]["last_reason"].get<std::string>().find("stop"), std::string::npos) << j.dump();
}

TEST_F(JobsCli, ServingWhileAnotherProcessRegistersVersionsNeverFailsOrTears) {
  ingest("ann");
  auto first = run_hearth(home_args({"jobs", "run", "--job", std::to_string(submit("ann", {"--steps", "2"}))}), env());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  for (int i = 0; i < 4; ++i) submit("ann", {"--steps", "3", "--keep-versions", "2"});
  const fs::path log = dir_ / "writer.log";
  const pid_t writer = testing::spawn_hearth(home_args({"jobs", "run"}), log, env());

  engine::EngineOptions o;
  o.home = home_;
  o.key = privacy::MasterKeySource::from_passphrase("correct-horse");
  engine::Engine reader(o);
  engine::BaseModelSpec base;
  base.path = testing::stories260k_dir().string();
  base.quant = "nf4";
  reader.load_base(base);
  // Until the writer has run its four jobs (however slow a loaded machine makes them), at least
  // five generations; ten minutes is the bound on a writer that never finishes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  int served = 0;
  for (int status = 0; ::waitpid(writer, &status, WNOHANG) == 0 || served < 5; ++served) {
    engine::GenerateRequest r;
    r.prompt = "Emma";
    r.user = "ann";
    r.adapter = "default";
    r.options.max_tokens = 4;
    EXPECT_NO_THROW(reader.generate(r));  // a load of the newest version races the writer's commits
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  EXPECT_GE(reader.loaded_adapters().size(), 2u) << testing::slurp(log);  // it saw new versions arrive
  EXPECT_EQ(testing::slurp(log).find("locked"), std::string::npos) << testing::slurp(log);
  EXPECT_EQ(sql("SELECT COUNT(*) FROM jobs WHERE status = 'done'"), "5") << testing::slurp(log);
}

TEST_F(JobsCli, CommandLineBehavesAsPeopleExpect) {
  auto version = run_hearth({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("hearth 0."), std::string::npos) << version.out;
  EXPECT_NE(version.out.find("kernels"), std::string::npos);
  auto portable = run_hearth({"--version"}, {"HEARTH_ISA=scalar"});
  EXPECT_NE(portable.out.find("kernels scalar"), std::string::npos) << portable.out << portable.err;
  auto bogus = run_hearth({"--version"}, {"HEARTH_ISA=sse9"});
  EXPECT_NE(bogus.exit_code, 0);
  EXPECT_NE(bogus.err.find("HEARTH_ISA=sse9"), std::string::npos) << bogus.err;

  ingest("ann");
  // --home before or after the subcommand.
  auto before = run_hearth({"--home", home_.string(), "data", "list", "--json"});
  auto after = run_hearth({"data", "list", "--json", "--home", home_.string()});
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(before.out, after.out);
  // Destructive commands need --yes without a terminal, and then leave everything in place.
  auto refused = run_hearth(home_args({"forget", "--user", "ann"}));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("--yes"), std::string::npos) << refused.err;
  EXPECT_EQ(testing::count_error_lines(refused.err), 1) << refused.err;
  EXPECT_EQ(sql("SELECT COUNT(*) FROM users"), "1");
  auto forgot = run_hearth(home_args({"forget", "--user", "ann", "--yes"}));
  EXPECT_EQ(forgot.exit_code, 0) << forgot.err;
  EXPECT_EQ(sql("SELECT COUNT(*) FROM users"), "0");
  // Choices are listed in --help.
  auto help = run_hearth({"jobs", "submit", "--help"});
  EXPECT_NE(help.out.find("apollo-mini"), std::string::npos) << help.out;
}

}  // namespace
}  // namespace hearth
