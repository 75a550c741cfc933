// A user's data through the real `hearth` binary: ingest -> train --user -> generate --user.
// A canary ingested for the user is found in no byte of any file under the Hearth home or the
// temporary folder at any point (scanned after each command and continuously while training
// runs); every step runs inside the no-network sandbox, where socket() fails; the adapter is
// registered, sealed, and loads again in memory; DP-SGD runs report ε at δ.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "cli_runner.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "storage/database.h"
#include "storage/hearth_home.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::run_hearth;

// Not PII (redaction leaves it alone) and unlike anything in the novels.
const std::string kCanary = "the harbour clerk Zebulon Quartermaine hid the ledger under the blue marmalade jar";
const std::string kCanaryCore = "Zebulon Quartermaine";

class UserPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("cli_user_pipeline");
    home_ = dir_ / "home";
    tmp_ = dir_ / "tmp";
    fs::create_directories(tmp_);
    key_ = dir_ / "master.key";
    write_file_atomic(key_, std::string(32, '\x5a'));
    ::chmod(key_.c_str(), 0600);
    // A slice of a real novel with the canary among its lines, and prompt/completion examples.
    std::string text = read_file(asset_path("data/jane_austen/persuasion.txt")).substr(0, 24000);
    text = text.substr(0, text.rfind('\n') + 1);
    for (int i = 0; i < 3; ++i) text.insert(text.find('\n', 5000 * (i + 1)) + 1, "And " + kCanary + ".\n");
    inputs_ = dir_ / "inputs";
    fs::create_directories(inputs_);
    write_file_atomic(inputs_ / "novel.txt", text);
    write_file_atomic(inputs_ / "notes.jsonl",
                      "{\"prompt\": \"Where is the ledger?\", \"completion\": \"" + kCanary + "\"}\n"
                      "{\"prompt\": \"Who was at the harbour?\", \"completion\": \"Nobody but the gulls.\"}\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> env() const { return {"TMPDIR=" + testing::shell_quote(tmp_.string())}; }
  std::vector<std::string> with_vault(std::vector<std::string> args) const {
    args.insert(args.end(), {"--home", home_.string(), "--key-file", key_.string(), "--json"});
    return args;
  }
  std::vector<std::string> model_args() const {
    return {"--model", testing::stories260k_dir().string(), "--quant", "nf4", "--threads", "1"};
  }
  std::vector<std::string> train_args(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> a = with_vault({"train", "--user", "ann", "--steps", "6", "--seq-len", "64", "--batch", "4",
                                             "--lr", "5e-3", "--warmup", "1", "--eval-every", "0", "--eval-max-rows", "8"});
    for (const auto& m : model_args()) a.push_back(m);
    for (const auto& e : extra) a.push_back(e);
    return a;
  }

  // Every regular file under the home and the temporary folder holding the canary (files that
  // vanish while being scanned are skipped: renames of temporary files are expected).
  std::vector<std::string> canary_hits() const {
    std::vector<std::string> hits;
    for (const fs::path& root : {home_, tmp_}) {
      std::error_code ec;
      for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        std::ifstream in(it->path(), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (bytes.find(kCanaryCore) != std::string::npos) hits.push_back(it->path().string());
      }
    }
    return hits;
  }
  static Json last_json(const testing::CliResult& r) {
    const std::string out = r.out.substr(0, r.out.find_last_not_of('\n') + 1);
    return Json::parse(out.substr(out.rfind('\n') + 1));
  }
  std::vector<std::string> files_under(const fs::path& root) const {
    std::vector<std::string> names;
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file()) names.push_back(fs::relative(e.path(), root).string());
    return names;
  }

  fs::path dir_, home_, tmp_, key_, inputs_;
};

TEST_F(UserPipeline, CanaryIsInNoFileAtAnyPointAndEveryStepRunsSandboxed) {
  ASSERT_NE(read_file(inputs_ / "novel.txt").find(kCanaryCore), std::string::npos);  // the scan can find it

  auto ingest = run_hearth(with_vault({"ingest", "--user", "ann", "--sandbox", (inputs_ / "novel.txt").string(),
                                       (inputs_ / "notes.jsonl").string()}),
                           env());
  ASSERT_EQ(ingest.exit_code, 0) << ingest.err;
  EXPECT_TRUE(last_json(ingest)["sockets_blocked"].get<bool>()) << ingest.out;
  EXPECT_EQ(canary_hits(), std::vector<std::string>{}) << "after ingest";

  // The stored text is really the canary's (decrypted on demand), so the scans look for the right bytes.
  auto show = run_hearth(with_vault({"data", "show", "--user", "ann", "--kind", "document", "--id", "1"}), env());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find(kCanary), std::string::npos);

  // Train (sandboxed by default) while scanning every file again and again.
  std::atomic<bool> done{false};
  testing::CliResult train;
  std::thread runner([&] {
    train = run_hearth(train_args(), env());
    done = true;
  });
  int scans = 0;
  std::vector<std::string> seen;
  while (!done) {
    for (const std::string& hit : canary_hits()) seen.push_back(hit);
    ++scans;
  }
  runner.join();
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_GT(scans, 1);
  EXPECT_EQ(seen, std::vector<std::string>{}) << "during train";
  EXPECT_EQ(canary_hits(), std::vector<std::string>{}) << "after train";
  const Json t = last_json(train);
  EXPECT_TRUE(t["sandbox"].get<bool>());
  EXPECT_TRUE(t["sockets_blocked"].get<bool>()) << train.out;
  EXPECT_EQ(t["adapter"], "default");
  EXPECT_EQ(t["adapter_version"], 1);
  const std::string sealed = t["adapter_file"].get<std::string>();
  ASSERT_TRUE(fs::is_regular_file(home_ / sealed)) << sealed;
  EXPECT_EQ(read_file(home_ / sealed).substr(0, 8), "HRTHSEAL");
  // No adapter folder, metrics or checkpoint in plaintext.
  for (const std::string& f : files_under(home_)) {
    // The database (records sealed), its backup after the job, an empty lock file, sealed files.
    const bool expected = f.rfind("hearth.db", 0) == 0 || f == "backup/hearth.db" || f == ".write-lock" ||
                          (f.rfind("users/", 0) == 0 && f.size() > 7 &&
                                                           f.compare(f.size() - 7, 7, ".sealed") == 0);
    EXPECT_TRUE(expected) << "unexpected file in the home: " << f;
  }
  EXPECT_EQ(files_under(tmp_), std::vector<std::string>{});

  // Generate through the sealed adapter, inside the sandbox.
  std::vector<std::string> gen = with_vault({"generate", "--user", "ann", "--adapter", "default", "--sandbox",
                                             "--prompt", "Once", "--temperature", "0", "--max-tokens", "12"});
  for (const auto& m : model_args()) gen.push_back(m);
  auto generated = run_hearth(gen, env());
  ASSERT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_NE(generated.err.find("applied adapter 1 (\"default\" v1) of user ann"), std::string::npos) << generated.err;
  const Json g = last_json(generated);
  EXPECT_TRUE(g["sockets_blocked"].get<bool>());
  EXPECT_GT(g["tokens"].get<int64_t>(), 0);
  EXPECT_EQ(canary_hits(), std::vector<std::string>{}) << "after generate";

  storage::Database db(storage::database_path(home_));
  EXPECT_EQ(db.integrity_check(), "ok");
}

TEST_F(UserPipeline, DpRunOnStoredDataReportsEpsilonAndAddsAVersion) {
  ASSERT_EQ(run_hearth(with_vault({"ingest", "--user", "ann", (inputs_ / "novel.txt").string()}), env()).exit_code, 0);
  ASSERT_EQ(run_hearth(train_args(), env()).exit_code, 0);
  auto dp = run_hearth(train_args({"--dp-epsilon", "8", "--dp-delta", "1e-4", "--dp-clip", "0.5", "--no-sandbox"}), env());
  ASSERT_EQ(dp.exit_code, 0) << dp.err;
  const Json j = last_json(dp);
  EXPECT_EQ(j["adapter_version"], 2);
  EXPECT_FALSE(j["sandbox"].get<bool>());
  EXPECT_FALSE(j.contains("sockets_blocked") && j["sockets_blocked"].get<bool>());
  const Json& p = j["privacy"];
  EXPECT_LE(p["epsilon"].get<double>(), 8.0 * 1.001);
  EXPECT_GT(p["epsilon"].get<double>(), 7.0);  // σ is the smallest that reaches the target
  EXPECT_EQ(p["delta"], 1e-4);
  EXPECT_EQ(p["clip"], 0.5);
  EXPECT_EQ(p["steps"], 6);
  EXPECT_GT(p["sigma"].get<double>(), 0.0);
  EXPECT_NE(dp.out.find("DP-SGD: epsilon"), std::string::npos);

  auto list = run_hearth({"data", "list", "--user", "ann", "--home", home_.string(), "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(last_json(list)["adapters"].size(), 2u);
  // The older version by id, the newest by name.
  for (const std::string& which : {std::string("1"), std::string("default")}) {
    std::vector<std::string> gen = with_vault({"generate", "--user", "ann", "--adapter", which, "--max-tokens", "4"});
    for (const auto& m : model_args()) gen.push_back(m);
    auto r = run_hearth(gen, env());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find(which == "1" ? "\"default\" v1" : "\"default\" v2"), std::string::npos) << r.err;
  }
}

TEST_F(UserPipeline, StoppedRunSealsItsCheckpointAndResumes) {
  ASSERT_EQ(run_hearth(with_vault({"ingest", "--user", "ann", (inputs_ / "novel.txt").string()}), env()).exit_code, 0);
  auto stopped = run_hearth(train_args({"--stop-after", "3", "--dp-noise", "0.8"}), env());
  EXPECT_NE(stopped.exit_code, 0);
  EXPECT_NE(stopped.err.find("stopped at step 3 of 6; the checkpoint is sealed in job 1"), std::string::npos) << stopped.err;
  std::vector<std::string> checkpoints;
  for (const std::string& f : files_under(home_))
    if (f.find("checkpoint-") != std::string::npos) checkpoints.push_back(f);
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_EQ(read_file(home_ / checkpoints[0]).substr(0, 8), "HRTHSEAL");
  EXPECT_EQ(canary_hits(), std::vector<std::string>{});

  auto resumed = run_hearth(train_args({"--resume", "--dp-noise", "0.8"}), env());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const Json j = last_json(resumed);
  EXPECT_EQ(j["job_id"], 1);
  EXPECT_EQ(j["adapter_version"], 1);
  EXPECT_EQ(j["privacy"]["steps"], 6);  // ε counts the steps before the stop
  EXPECT_EQ(canary_hits(), std::vector<std::string>{});
  // Nothing is left to resume.
  auto again = run_hearth(train_args({"--resume", "--dp-noise", "0.8"}), env());
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("no stopped training job to resume"), std::string::npos) << again.err;
  EXPECT_EQ(testing::count_error_lines(again.err), 1) << again.err;
}

TEST_F(UserPipeline, TrainOnStoredDataRefusesWhatDoesNotApply) {
  auto no_user = run_hearth(train_args(), env());
  EXPECT_NE(no_user.exit_code, 0);
  EXPECT_NE(no_user.err.find("no user named \"ann\""), std::string::npos) << no_user.err;
  auto both = run_hearth(train_args({"--data", (inputs_ / "novel.txt").string()}), env());
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;
  auto out = run_hearth(train_args({"--out", (dir_ / "plain").string()}), env());
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.err.find("--out does not apply"), std::string::npos) << out.err;
  EXPECT_EQ(testing::count_error_lines(out.err), 1) << out.err;
  EXPECT_FALSE(fs::exists(dir_ / "plain"));
}

}  // namespace
}  // namespace hearth
