// SIGKILL through the real `hearth` binary, at random moments (a fresh seed each run, printed;
// HEARTH_TEST_SEED replays it): training killed again and again and resumed each time ends with
// an adapter bitwise equal to an uninterrupted run's; ingest killed inside its transaction
// leaves no row of it (no partial document or example, not even the user) and a database that
// passes integrity_check, and the same ingest run again stores everything.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "cli_runner.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/user_data.h"
#include "storage/vault.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::run_hearth;

uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("HEARTH_TEST_SEED")) return std::strtoull(fixed, nullptr, 10);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

void sleep_ms(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// A `hearth` process in the background (testing::spawn_hearth), killed if still running at
// the end of the scope.
class Background {
 public:
  Background(const std::vector<std::string>& args, const fs::path& log) : pid_(testing::spawn_hearth(args, log)), log_(log) {}
  ~Background() { kill_now(); }
  pid_t pid() const { return pid_; }
  // Whether it still runs (reaps it when it has ended, keeping its exit code).
  bool running() {
    if (ended_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    ended_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return false;
  }
  // SIGKILL if it still runs; true when the signal reached a running process.
  bool kill_now() {
    if (!running()) return false;
    ::kill(pid_, SIGKILL);
    exit_code_ = testing::wait_for(pid_);
    ended_ = true;
    return exit_code_ == -SIGKILL;
  }
  int exit_code() const { return exit_code_; }
  std::string log() const { return testing::slurp(log_); }

 private:
  pid_t pid_;
  fs::path log_;
  bool ended_ = false;
  int exit_code_ = 0;
};

// The step of the checkpoint in `out`, or -1 without one (the folder is swapped in whole, so
// a complete one is always read).
int64_t checkpoint_step(const fs::path& out) {
  try {
    return read_json_file(out / "checkpoint" / "state.json").at("step").get<int64_t>();
  } catch (const std::exception&) {
    return -1;
  }
}

void expect_same_tensors(const fs::path& a, const fs::path& b) {
  auto fa = SafetensorsFile::open(a), fb = SafetensorsFile::open(b);
  ASSERT_EQ(fa->entries().size(), fb->entries().size());
  ASSERT_GT(fa->entries().size(), 0u);
  for (const auto& e : fa->entries()) {
    ASSERT_TRUE(fb->contains(e.name)) << e.name;
    EXPECT_TRUE(at::equal(fa->tensor(e.name), fb->tensor(e.name))) << e.name;
  }
}

class Kills : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = fresh_seed();
    rng_.seed(seed_);
    dir_ = testing::fresh_temp_dir("cli_kills");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  fs::path dir_;
};

// Enough that kills at a random time from the start (up to 0.9 s) leave steps for later rounds
// on a fast machine: at 24 an AVX-512 VM trained 12 steps in that time and finished in the third
// round, before the fourth kill.
constexpr int64_t kSteps = 60;

std::vector<std::string> train_args(const fs::path& data, const fs::path& out, bool resume) {
  std::vector<std::string> a{"train", "--model", testing::stories260k_dir().string(), "--quant", "nf4", "--data",
                             data.string(), "--out", out.string(), "--method", "lora", "--rank", "4",
                             "--lora-dropout", "0.1", "--optim", "apollo", "--apollo-rank", "2",
                             "--apollo-update-gap", "5", "--steps", std::to_string(kSteps), "--seq-len", "64",
                             "--batch", "4", "--lr", "5e-3", "--warmup", "2", "--eval-every", "0",
                             "--eval-max-rows", "4", "--checkpoint-every", "1", "--seed", "7", "--threads", "1"};
  if (resume) a.push_back("--resume");
  return a;
}

TEST_F(Kills, TrainingKilledAtRandomMomentsResumesToABitwiseEqualAdapter) {
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed_));
  const fs::path data = dir_ / "austen.txt";
  std::string text = read_file(asset_path("data/jane_austen/persuasion.txt")).substr(0, 30000);
  write_file_atomic(data, text.substr(0, text.rfind('\n') + 1));

  auto straight = run_hearth(train_args(data, dir_ / "straight", false));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;

  // Each round starts the command (resuming when a checkpoint exists) and kills it: either at
  // a random time from its start (loading, data, first steps) or a random 0-15 ms after the
  // checkpoint reached a random later step (inside a step, an evaluation or a checkpoint write).
  const fs::path out = dir_ / "killed";
  int kills = 0, kills_in_training = 0;
  for (int round = 0; round < 6; ++round) {
    const int64_t before = checkpoint_step(out);
    Background run(train_args(data, out, before >= 0), dir_ / ("train" + std::to_string(round) + ".log"));
    ASSERT_GT(run.pid(), 0);
    const bool at_start = round == 0 || uniform(0, 3) == 0;
    if (at_start) {
      sleep_ms(uniform(50, 900));
    } else {
      // Leave steps for the rounds still to come: a target near the end let the run finish
      // before the fourth kill.
      const int64_t from = std::max<int64_t>(before, 0) + 1;
      const int64_t target = uniform(from, std::max(from, from + (kSteps - 2 - from) / (6 - round)));
      while (run.running() && checkpoint_step(out) < target) sleep_ms(1);
      sleep_ms(uniform(0, 15));
    }
    const bool killed = run.kill_now();
    if (!killed) {
      ASSERT_EQ(run.exit_code(), 0) << run.log();  // finished first: it must have succeeded
      break;
    }
    ++kills;
    kills_in_training += checkpoint_step(out) > std::max<int64_t>(before, 0);
    std::printf("round %d: killed %s, checkpoint at step %lld\n", round, at_start ? "at a random time" : "after a step",
                static_cast<long long>(checkpoint_step(out)));
  }
  EXPECT_GE(kills, 4);
  EXPECT_GE(kills_in_training, 2);  // kills landed while steps were being taken, not only at start-up
  if (!fs::exists(out / "adapter_model.safetensors")) {
    auto last = run_hearth(train_args(data, out, checkpoint_step(out) >= 0));
    ASSERT_EQ(last.exit_code, 0) << last.err;
  }
  expect_same_tensors(dir_ / "straight" / "adapter_model.safetensors", out / "adapter_model.safetensors");
}

// JSONL files of prompt/completion pairs made of consecutive lines of a novel.
std::vector<fs::path> write_examples(const fs::path& dir, int files, int per_file) {
  std::string text = read_file(asset_path("data/jane_austen/emma.txt"));
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    if (end - start > 20) lines.push_back(text.substr(start, end - start));
  }
  std::vector<fs::path> paths;
  size_t next = 0;
  for (int f = 0; f < files; ++f) {
    std::string jsonl;
    for (int i = 0; i < per_file; ++i, next += 2) {
      jsonl += Json{{"prompt", lines[next % lines.size()]}, {"completion", lines[(next + 1) % lines.size()]}}.dump() + "\n";
    }
    paths.push_back(dir / ("part" + std::to_string(f) + ".jsonl"));
    write_file_atomic(paths.back(), jsonl);
  }
  return paths;
}

// Whether process `pid` has both `a` and `b` open (from /proc/<pid>/fd).
bool has_open(pid_t pid, const fs::path& a, const fs::path& b) {
  bool seen_a = false, seen_b = false;
  std::error_code ec;
  for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path target = fs::read_symlink(it->path(), ec);
    if (ec) continue;
    seen_a = seen_a || target == a;
    seen_b = seen_b || target == b;
  }
  return seen_a && seen_b;
}

int64_t count_rows(storage::Database& db, const char* sql) {
  storage::Statement s = db.prepare(sql);
  s.step();
  return s.column_int(0);
}

TEST_F(Kills, IngestKilledInsideItsTransactionLeavesNothingAndAnIntactDatabase) {
  SCOPED_TRACE("HEARTH_TEST_SEED=" + std::to_string(seed_));
  const fs::path inputs = dir_ / "inputs";
  fs::create_directories(inputs);
  const std::vector<fs::path> files = write_examples(inputs, 6, 400);
  const fs::path key = dir_ / "master.key";
  write_file_atomic(key, std::string(32, '\x2b'));
  ::chmod(key.c_str(), 0600);
  auto ingest_args = [&](const fs::path& home) {
    std::vector<std::string> a{"ingest", "--home", home.string(), "--key-file", key.string(), "--user", "ann",
                               "--redact", "off", "--json"};
    for (const fs::path& f : files) a.push_back(f.string());
    return a;
  };

  auto full = run_hearth(ingest_args(dir_ / "reference"));
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const std::string last_line = full.out.substr(full.out.rfind('\n', full.out.size() - 2) + 1);
  const int64_t all = parse_json(last_line, "ingest output")["examples_added"].get<int64_t>();
  ASSERT_GT(all, 2000);

  for (int trial = 0; trial < 4; ++trial) {
    const fs::path home = dir_ / ("home" + std::to_string(trial));
    // Killed while it reads a random input file with the database open: inside the transaction
    // (the files are only checked, one at a time, before the database is opened).
    const fs::path target = fs::canonical(files[uniform(0, int64_t(files.size()) - 1)]);
    Background run(ingest_args(home), dir_ / ("ingest" + std::to_string(trial) + ".log"));
    ASSERT_GT(run.pid(), 0);
    while (run.running() && !has_open(run.pid(), target, storage::database_path(fs::absolute(home)))) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    sleep_ms(uniform(0, 3));
    ASSERT_TRUE(run.kill_now()) << "ingest ended before it could be killed: " << run.log();
    {
      storage::Database db(storage::database_path(home));  // opening runs quick_check
      EXPECT_EQ(db.integrity_check(), "ok") << "trial " << trial;
      EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM examples"), 0) << "trial " << trial;
      EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM users"), 0) << "trial " << trial;
      EXPECT_EQ(count_rows(db, "SELECT COUNT(*) FROM audit_log"), 0) << "trial " << trial;
    }
    // The same command again stores all of it, and every record opens.
    auto again = run_hearth(ingest_args(home));
    ASSERT_EQ(again.exit_code, 0) << again.err;
    storage::Vault vault(home, privacy::MasterKeySource::from_key_file(key));
    EXPECT_EQ(static_cast<int64_t>(storage::load_user_data(vault.db(), vault.keyring(), "ann").examples.size()), all);
    EXPECT_EQ(vault.db().integrity_check(), "ok");
  }
}

}  // namespace
}  // namespace hearth
