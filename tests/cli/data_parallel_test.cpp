// Data-parallel training through the real binary and LibTorch's c10d (TCPStore + Gloo over
// loopback): two processes of one thread each give the adapter one process gives with the
// combined batch, and a stopped and resumed two-process run gives the same bits; torchrun's
// environment variables alone form the group; a killed rank makes its peer fail promptly with a
// clear error; ranks started with different settings both refuse.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "cli_runner.h"
#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "loopback_port.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using testing::run_hearth;
using testing::spawn_hearth;
using testing::wait_for;

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("data_parallel");
    std::string text = read_file(asset_path("data/tinystories/valid_a.txt"));
    text.resize(40000);
    write_file_atomic(dir_ / "stories.txt", text.substr(0, text.rfind('\n') + 1));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `hearth train` with the settings every run here shares (APOLLO: seeded projections must
  // stay identical on every rank), plus `extra`, which may replace the optimizer, lr and steps.
  std::vector<std::string> train_args(const std::string& out, std::vector<std::string> extra) const {
    std::vector<std::string> args = {"train", "--model", testing::stories260k_dir().string(), "--quant", "nf4",
                                     "--data", (dir_ / "stories.txt").string(), "--rank", "4", "--warmup", "1",
                                     "--seq-len", "64", "--eval-every", "0", "--eval-max-rows", "8", "--seed", "5",
                                     "--threads", "1", "--out", (dir_ / out).string()};
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"--optim", "apollo"}, {"--lr", "5e-3"}, {"--steps", "6"}}) {
      if (std::find(extra.begin(), extra.end(), name) == extra.end()) args.insert(args.end(), {name, value});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Starts world_size ranks of the same command and waits for all; their exit codes.
  std::vector<int> run_ranks(int world_size, const std::string& out, const std::vector<std::string>& extra) {
    const std::string master = "127.0.0.1:" + std::to_string(testing::free_loopback_port());
    std::vector<pid_t> pids;
    for (int r = 0; r < world_size; ++r) {
      std::vector<std::string> e = extra;
      e.insert(e.end(), {"--world-size", std::to_string(world_size), "--process-rank", std::to_string(r), "--master", master,
                         "--dist-timeout", "30"});
      pids.push_back(spawn_hearth(train_args(out, e), dir_ / (out + "_rank" + std::to_string(r) + ".log")));
    }
    std::vector<int> codes;
    for (pid_t p : pids) codes.push_back(wait_for(p));
    return codes;
  }

  std::string log(const std::string& name) const { return testing::slurp(dir_ / name); }

  // max |a - b| over every tensor of two adapters, and max |b - init| (how far training moved it).
  double max_difference(const std::string& a, const std::string& b) const {
    auto fa = SafetensorsFile::open(dir_ / a / "adapter_model.safetensors");
    auto fb = SafetensorsFile::open(dir_ / b / "adapter_model.safetensors");
    double d = 0;
    for (const auto& e : fa->entries()) d = std::max(d, (fa->tensor(e.name) - fb->tensor(e.name)).abs().max().item<double>());
    return d;
  }
  double max_abs_b(const std::string& a) const {
    auto f = SafetensorsFile::open(dir_ / a / "adapter_model.safetensors");
    double m = 0;
    for (const auto& e : f->entries())
      if (e.name.find("lora_B") != std::string::npos) m = std::max(m, f->tensor(e.name).abs().max().item<double>());
    return m;
  }

  fs::path dir_;
};

TEST_F(DataParallel, TwoProcessesMatchOneWithTheCombinedBatchAndResume) {
  // Overlapped buckets (gradient hooks during backward), AdamW: 2 ranks x batch 2 against one
  // process with batch 4. The same rows, the same normalization by the step's trained targets;
  // only the float summation order of the gradients differs (the BLAS blocks a batch of 4 and of
  // 2 differently, and Gloo adds two partial sums), ~1e-7 relative. Adam can turn that into a
  // flipped sign on a coordinate whose gradient is mostly cancellation, which costs about lr per
  // step, so: max |difference| < lr / 20. (APOLLO amplifies such differences by orders of
  // magnitude over 6 steps even between single-process runs; see the AdamW case below.)
  const std::vector<std::string> adamw_batch{"--optim", "adamw", "--lr", "1e-3", "--grad-checkpoint", "off"};
  std::vector<std::string> one_args = adamw_batch, two_args = adamw_batch;
  one_args.insert(one_args.end(), {"--batch", "4"});
  two_args.insert(two_args.end(), {"--batch", "2"});
  ASSERT_EQ(run_hearth(train_args("one", one_args)).exit_code, 0);
  std::vector<int> codes = run_ranks(2, "two", two_args);
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << log("two_rank0.log") << log("two_rank1.log");
  EXPECT_NE(log("two_rank1.log").find("rank 1 of 2 finished"), std::string::npos) << log("two_rank1.log");
  EXPECT_GT(max_abs_b("one"), 2e-3);  // several lr-sized steps
  EXPECT_LT(max_difference("one", "two"), 1e-3 / 20);

  // APOLLO (seeded projections on every rank), stopped after 3 steps (non-zero exit, rank 0's
  // checkpoint on disk) and resumed with the same world size: the same operations in the same
  // order on the same values as an uninterrupted 2-rank run, so bitwise equal to it.
  ASSERT_EQ(run_ranks(2, "apollo", {"--batch", "2", "--grad-checkpoint", "off"}), (std::vector<int>{0, 0}))
      << log("apollo_rank0.log");
  const std::vector<int> stopped = run_ranks(2, "parts", {"--batch", "2", "--grad-checkpoint", "off", "--stop-after", "3"});
  EXPECT_NE(stopped[0], 0);
  ASSERT_TRUE(fs::exists(dir_ / "parts" / "checkpoint")) << log("parts_rank0.log");
  codes = run_ranks(2, "parts", {"--batch", "2", "--grad-checkpoint", "off", "--resume"});
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << log("parts_rank0.log") << log("parts_rank1.log");
  EXPECT_EQ(max_difference("apollo", "parts"), 0.0);

  // Buckets sent after backward (gradient checkpointing), 2 micro-batches per rank, AdamW,
  // against one process with the same micro-batches (batch 1 x 4). Adam divides each coordinate
  // by its own gradient scale, so a coordinate whose summed gradient is mostly cancellation can
  // turn a 1e-7 summation difference into a visible one; but a flipped sign costs about lr per
  // step, so the adapters must agree to well within one step: max |difference| < lr / 20.
  // (APOLLO is not used here: its channel-wise ratios of norms make 6 steps of it amplify such
  // differences by orders of magnitude even between single-process runs that differ only in
  // gradient checkpointing.)
  const std::vector<std::string> adamw{"--optim", "adamw", "--lr", "1e-3", "--grad-checkpoint", "on", "--batch", "1"};
  one_args = adamw;
  one_args.insert(one_args.end(), {"--grad-accum", "4"});
  ASSERT_EQ(run_hearth(train_args("one_acc", one_args)).exit_code, 0);
  two_args = adamw;
  two_args.insert(two_args.end(), {"--grad-accum", "2"});
  codes = run_ranks(2, "two_acc", two_args);
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << log("two_acc_rank0.log") << log("two_acc_rank1.log");
  EXPECT_GT(max_abs_b("one_acc"), 2e-3);  // several lr-sized steps
  EXPECT_LT(max_difference("one_acc", "two_acc"), 1e-3 / 20);
}

TEST_F(DataParallel, AKilledRankMakesItsPeerFailWithAClearError) {
  const std::string master = "127.0.0.1:" + std::to_string(testing::free_loopback_port());
  auto rank_args = [&](int r) {
    return train_args("killed", {"--batch", "2", "--steps", "100000", "--world-size", "2", "--process-rank",
                                 std::to_string(r), "--master", master, "--dist-timeout", "20"});
  };
  const pid_t r0 = spawn_hearth(rank_args(0), dir_ / "k0.log");
  const pid_t r1 = spawn_hearth(rank_args(1), dir_ / "k1.log");
  // Wait until rank 0 has logged training steps, then kill rank 1 outright.
  const auto t0 = std::chrono::steady_clock::now();
  while (!fs::exists(dir_ / "killed" / "metrics.jsonl") || testing::count_lines(testing::slurp(dir_ / "killed" / "metrics.jsonl")) < 3) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(120)) << log("k0.log") << log("k1.log");
    ASSERT_EQ(::waitpid(r0, nullptr, WNOHANG), 0) << "rank 0 stopped early: " << log("k0.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(r1, SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  EXPECT_EQ(wait_for(r1), -SIGKILL);
  const int code = wait_for(r0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_NE(code, 0);
  // A closed connection is noticed at once; a hung peer would take the 20 s timeout.
  EXPECT_LT(seconds, 25.0);
  const std::string err = log("k0.log");
  EXPECT_NE(err.find("error: rank 0 of 2 lost its peers"), std::string::npos) << err;
  EXPECT_EQ(testing::count_error_lines(err), 1) << err;
}

// torchrun starts each rank with WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT set and no flags:
// those alone form the group, which trains bitwise what the same ranks train with the flags.
TEST_F(DataParallel, TorchrunsEnvironmentAloneFormsTheGroup) {
  std::vector<std::string> settings{"--batch", "2", "--grad-checkpoint", "off", "--steps", "3"};
  ASSERT_EQ(run_ranks(2, "flags", settings), (std::vector<int>{0, 0})) << log("flags_rank0.log");
  const std::string port = std::to_string(testing::free_loopback_port());
  settings.insert(settings.end(), {"--dist-timeout", "30"});
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.push_back(spawn_hearth(train_args("env", settings), dir_ / ("env_rank" + std::to_string(r) + ".log"),
                                 {"WORLD_SIZE=2", "RANK=" + std::to_string(r), "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port}));
  }
  EXPECT_EQ(wait_for(ranks[0]), 0) << log("env_rank0.log");
  EXPECT_EQ(wait_for(ranks[1]), 0) << log("env_rank1.log");
  EXPECT_NE(log("env_rank1.log").find("rank 1 of 2 finished"), std::string::npos) << log("env_rank1.log");
  EXPECT_EQ(max_difference("flags", "env"), 0.0);
  // A variable torchrun would never set names itself.
  const auto bad = run_hearth(train_args("bad_env", {}), {"WORLD_SIZE=two"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("WORLD_SIZE"), std::string::npos) << bad.err;
  EXPECT_EQ(testing::count_error_lines(bad.err), 1) << bad.err;
}

TEST_F(DataParallel, RanksWithDifferentSettingsRefuse) {
  const std::string master = "127.0.0.1:" + std::to_string(testing::free_loopback_port());
  auto rank_args = [&](int r, const std::string& batch) {
    return train_args("mismatch", {"--batch", batch, "--world-size", "2", "--process-rank", std::to_string(r), "--master", master,
                                   "--dist-timeout", "20"});
  };
  const pid_t r0 = spawn_hearth(rank_args(0, "2"), dir_ / "m0.log");
  const pid_t r1 = spawn_hearth(rank_args(1, "3"), dir_ / "m1.log");
  EXPECT_NE(wait_for(r0), 0);
  EXPECT_NE(wait_for(r1), 0);
  for (const char* f : {"m0.log", "m1.log"}) {
    EXPECT_NE(log(f).find("disagree on the data or settings"), std::string::npos) << log(f);
  }
  EXPECT_FALSE(fs::exists(dir_ / "mismatch" / "adapter_model.safetensors"));
  // Bad options fail before any rendezvous.
  auto bad = run_hearth(train_args("bad", {"--world-size", "2", "--process-rank", "2"}));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("the process rank (--process-rank or $RANK) must be between 0 and world size - 1"), std::string::npos) << bad.err;
  auto bad_master = run_hearth(train_args("bad", {"--world-size", "2", "--process-rank", "1", "--master", "nowhere"}));
  EXPECT_NE(bad_master.err.find("--master must be ADDR:PORT"), std::string::npos) << bad_master.err;
}

}  // namespace
}  // namespace hearth
