// Federation through the shipped entry points, each its own process on loopback: the CLI's
// `hearth federate serve` coordinating, one device joining with `hearth federate join` and one
// through the C API's hearth_federate_join (tests/capi/capi_federate_client.c), each with its own
// home, key and user. Both devices must upload in every round and the coordinator must write the
// population adapter and one aggregate line per round.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_runner.h"
#include "core/assets.h"
#include "core/atomic_file.h"
#include "engine/engine.h"
#include "loopback_port.h"
#include "serving_fixtures.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

// The report JSON a client printed: the last line of its log that parses as an object with
// "rounds_uploaded".
Json client_report(const std::string& log) {
  std::istringstream lines(log);
  Json found;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.front() != '{') continue;
    try {
      Json j = Json::parse(line);
      if (j.contains("rounds_uploaded")) found = j;
    } catch (const std::exception&) {
    }
  }
  return found;
}

TEST(FederateCli, ACliDeviceAndACApiDeviceCompleteEveryRound) {
  const fs::path dir = testing::fresh_temp_dir("federate_cli");
  // The CLI device: a home unlocked by a key file, user ann holding 12 kB of Emma.
  const fs::path cli_home = dir / "cli_home", key = dir / "key";
  {
    std::ofstream k(key, std::ios::binary);
    k << testing::serving_key();
  }
  fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
  {
    engine::Engine e(testing::serving_engine_options(cli_home, privacy::MasterKeySource::from_key_file(key)));
    std::string emma = read_file(asset_path("data/jane_austen/emma.txt")).substr(20000, 12000);
    e.ingest_texts("ann", {{storage::IngestItem::Kind::kDocument, "emma", emma}});
  }
  const std::string coordinator = "127.0.0.1:" + std::to_string(testing::free_loopback_port());
  const std::string model = testing::stories260k_dir().string();
  const pid_t serve = testing::spawn_hearth(
      {"federate", "serve", "--model", model, "--quant", "nf4", "--listen", coordinator, "--out", (dir / "server").string(),
       "--rounds", "2", "--cohort", "2", "--rank", "4", "--local-steps", "2", "--batch", "2", "--seq-len", "64",
       "--optim", "adamw", "--local-lr", "5e-3", "--clip", "10", "--join-timeout", "120", "--seed", "3", "--threads", "1"},
      dir / "serve.log");
  const pid_t cli_device = testing::spawn_hearth({"federate", "join", "--home", cli_home.string(), "--key-file", key.string(),
                                                  "--model", model, "--quant", "nf4", "--user", "ann", "--coordinator",
                                                  coordinator, "--timeout", "120", "--threads", "1", "--json"},
                                                 dir / "cli_device.log");
  const pid_t capi_device =
      testing::spawn_program(HEARTH_CAPI_FEDERATE_CLIENT_PATH,
                             {(dir / "capi_home").string(), asset_path("").string(), coordinator, "bob"}, dir / "capi_device.log");

  const int serve_code = testing::wait_for(serve), cli_code = testing::wait_for(cli_device),
            capi_code = testing::wait_for(capi_device);
  const std::string serve_log = testing::slurp(dir / "serve.log"), cli_log = testing::slurp(dir / "cli_device.log"),
                    capi_log = testing::slurp(dir / "capi_device.log");
  ASSERT_EQ(serve_code, 0) << serve_log;
  ASSERT_EQ(cli_code, 0) << cli_log;
  ASSERT_EQ(capi_code, 0) << capi_log;
  for (const std::string* log : {&cli_log, &capi_log}) {
    const Json report = client_report(*log);
    ASSERT_TRUE(report.is_object()) << *log;
    EXPECT_EQ(report.at("rounds_sampled").get<int64_t>(), 2) << *log;
    EXPECT_EQ(report.at("rounds_uploaded").get<int64_t>(), 2) << *log;
  }
  EXPECT_NE(capi_log.find("missing coordinator: "), std::string::npos) << capi_log;
  EXPECT_TRUE(fs::exists(dir / "server" / "population" / "adapter_model.safetensors")) << serve_log;
  EXPECT_EQ(testing::count_lines(testing::slurp(dir / "server" / "rounds.jsonl")), 2) << serve_log;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth
