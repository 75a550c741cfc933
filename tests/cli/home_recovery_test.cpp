// A Hearth home through the real binary when something is wrong with it: a damaged database is
// refused by every command with one error line saying how to recover, and not written to (no
// audit row lands in it); `hearth doctor` finds it, `hearth doctor --restore` brings back the
// backup made after the last successful job; a damaged sealed record is named alone; an empty
// file to ingest creates nothing, not even the home.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>

#include "cli_runner.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/sealed_blob_file.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::run_hearth;

class HomeRecovery : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("cli_home_recovery");
    home_ = dir_ / "home";
    key_ = dir_ / "master.key";
    write_file_atomic(key_, std::string(32, '\x3c'));
    ::chmod(key_.c_str(), 0600);
    for (int i = 0; i < 8; ++i) {
      files_.push_back(dir_ / ("note" + std::to_string(i) + ".txt"));
      write_file_atomic(files_.back(), "note " + std::to_string(i) + ": " + std::string(600, static_cast<char>('a' + i)));
    }
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  std::vector<std::string> with_home(std::vector<std::string> args, bool key = false) const {
    args.insert(args.end(), {"--home", home_.string()});
    if (key) args.insert(args.end(), {"--key-file", key_.string()});
    return args;
  }
  testing::CliResult ingest(const std::vector<fs::path>& files) const {
    std::vector<std::string> a = with_home({"ingest", "--user", "ann"}, true);
    for (const fs::path& f : files) a.push_back(f.string());
    return run_hearth(a);
  }
  static void expect_one_error(const testing::CliResult& r, int code, const std::string& needle) {
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_EQ(testing::count_error_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
  }
  fs::path db() const { return storage::database_path(home_); }

  fs::path dir_, home_, key_;
  std::vector<fs::path> files_;
};

// Damages b-tree page headers of the main file (after moving the WAL into it).
void damage(const fs::path& db) {
  storage::Database(db).exec("PRAGMA wal_checkpoint(TRUNCATE)");
  const auto size = static_cast<int64_t>(fs::file_size(db));
  std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
  std::mt19937 gen(11);
  for (int64_t off = 2 * 4096; off < size; off += 3 * 4096) {
    f.seekp(off);
    for (int i = 0; i < 16; ++i) f.put(static_cast<char>(gen()));
  }
}

TEST_F(HomeRecovery, DamagedDatabaseIsRefusedUnwrittenFoundByDoctorAndRestored) {
  ASSERT_EQ(ingest({files_.begin(), files_.begin() + 6}).exit_code, 0);
  ASSERT_TRUE(storage::backup_info(db()).exists);  // made after the successful job
  ASSERT_EQ(ingest({files_[6], files_[7]}).exit_code, 0);  // and made again
  damage(db());
  const std::string damaged = storage::sha256_hex(read_file(db()));

  // Every command refuses it, and none writes to it: `data show` used to add its audit row.
  for (const auto& args : {with_home({"data", "list"}), with_home({"data", "list", "--user", "ann"}),
                           with_home({"data", "show", "--user", "ann", "--id", "1"}, true),
                           with_home({"data", "delete", "--user", "ann", "--id", "1"}),
                           with_home({"ingest", "--user", "bob", files_[0].string()}, true),
                           with_home({"forget", "--user", "ann"})}) {
    auto r = run_hearth(args);
    expect_one_error(r, 4, "is damaged (PRAGMA quick_check: ");
    EXPECT_NE(r.err.find("hearth doctor --home " + home_.string() + " --restore"), std::string::npos) << r.err;
    EXPECT_EQ(storage::sha256_hex(read_file(db())), damaged) << args[0] << " " << args[1];
  }
  auto check = run_hearth(with_home({"doctor", "--json"}));
  expect_one_error(check, 4, "is damaged");
  EXPECT_NE(check.out.find("integrity_check"), std::string::npos) << check.out;
  EXPECT_EQ(storage::sha256_hex(read_file(db())), damaged);

  auto restore = run_hearth(with_home({"doctor", "--restore"}));
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_NE(restore.out.find("restored " + db().string()), std::string::npos) << restore.out;
  auto after = run_hearth(with_home({"doctor"}));
  EXPECT_EQ(after.exit_code, 0) << after.out << after.err;
  // The backup's state: everything of the last successful job.
  auto list = run_hearth(with_home({"data", "list", "--user", "ann", "--json"}));
  ASSERT_EQ(list.exit_code, 0) << list.err;
  const std::string last = list.out.substr(list.out.rfind('\n', list.out.size() - 2) + 1);
  EXPECT_EQ(parse_json(last, "list")["records"].size(), 8u) << last;
  // A healthy database is not replaced without --force.
  expect_one_error(run_hearth(with_home({"doctor", "--restore"})), 2, "--force");
}

TEST_F(HomeRecovery, ADamagedRecordIsNamedAloneAndTheOthersStillOpen) {
  ASSERT_EQ(ingest({files_.begin(), files_.begin() + 4}).exit_code, 0);
  {
    storage::Database d(db());
    std::string sealed;
    storage::Statement s = d.prepare("SELECT sealed FROM documents WHERE id = 2");
    ASSERT_TRUE(s.step());
    sealed = s.column_blob(0);
    sealed[30] ^= 0x01;
    d.prepare("UPDATE documents SET sealed = ?1 WHERE id = 2").bind_blob(1, sealed).run();
  }
  auto bad = run_hearth(with_home({"data", "show", "--user", "ann", "--id", "2"}, true));
  expect_one_error(bad, 4, "documents record 2 of user 1 is damaged");
  EXPECT_NE(bad.err.find("only this record is affected"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("hearth data delete --user NAME --kind document --id 2"), std::string::npos) << bad.err;
  for (const char* id : {"1", "3", "4"}) {
    auto ok = run_hearth(with_home({"data", "show", "--user", "ann", "--id", id}, true));
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
  }
  auto doctor = run_hearth(with_home({"doctor", "--verify-records"}, true));
  expect_one_error(doctor, 4, "1 record(s) are damaged");
  EXPECT_NE(doctor.out.find("sealed records: 3 open under the key, 1 damaged"), std::string::npos) << doctor.out;
}

TEST_F(HomeRecovery, AnEmptyFileToIngestCreatesNothing) {
  const fs::path empty = dir_ / "empty.txt";
  write_file_atomic(empty, "");
  expect_one_error(ingest({empty}), 2, "empty.txt is empty or blank: nothing to ingest");
  EXPECT_FALSE(fs::exists(home_));
  const fs::path blank = dir_ / "blank.jsonl";
  write_file_atomic(blank, "\n \n");
  expect_one_error(ingest({empty, blank}), 2, "nothing to ingest");
  EXPECT_FALSE(fs::exists(home_));
}

// Hearth gives OpenMP a passive wait policy before libgomp reads it (core/threads.h), unless
// the environment names one. libgomp's own report (OMP_DISPLAY_ENV) shows what it got.
TEST(OpenMpWaitPolicy, HearthChoosesPassiveUnlessTheEnvironmentSaysOtherwise) {
  auto spin_count = [](const std::string& env) {
    auto r = run_hearth({"model", "info", "--model", testing::stories260k_dir().string()},
                        {"env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=VERBOSE " + env});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.err.find("GOMP_SPINCOUNT = '");
    return at == std::string::npos ? std::string("not reported: ") + r.err : r.err.substr(at + 18, r.err.find('\'', at + 18) - at - 18);
  };
  EXPECT_EQ(spin_count(""), "0");  // passive: workers sleep as soon as their share is done
  EXPECT_EQ(spin_count("GOMP_SPINCOUNT=300000"), "300000");
  EXPECT_EQ(spin_count("OMP_WAIT_POLICY=ACTIVE"), "30000000000");
}

}  // namespace
}  // namespace hearth
