// Federated personalization end to end in one process: a coordinator and four device clients
// (each its own home, vault and user, the real stories260K base), talking over loopback through
// LibTorch's TCPStore and Gloo. A client drops out of round 1 after the masks are agreed; the
// round completes with the survivors. Everything the coordinator receives that has the size of
// an update is checked: the masked sum is noise to it, never one client's update, and once
// unmasked it is bitwise the sum of the survivors' encodings. Its round log holds aggregates only.
#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <thread>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "engine/engine.h"
#include "engine/federated_client.h"
#include "engine/federated_coordinator.h"
#include "loopback_port.h"
#include "privacy/rdp_accountant.h"
#include "serving_fixtures.h"
#include "test_helpers.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

const std::string kFederationKey(32, '\x42');


// 12 kB of one novel per user.
std::string novel_slice(const std::string& file) {
  std::string text = read_file(asset_path("data/jane_austen/" + file));
  text = text.substr(20000, 12000);
  return text.substr(0, text.rfind('\n') + 1);
}

struct Upload {
  int64_t client = 0, round = 0;
  at::Tensor unmasked, masked;
};

class Federation : public ::testing::Test {
 protected:
  void SetUp() override {
    set_num_threads(1);
    root_ = testing::fresh_temp_dir("federation");
    const char* novels[] = {"emma.txt", "persuasion.txt", "prideprejudice.txt", "sensesensibility.txt"};
    for (int i = 0; i < 4; ++i) {
      engine::Engine e(options_for(i));
      e.ingest_texts("user" + std::to_string(i), {{storage::IngestItem::Kind::kDocument, novels[i], novel_slice(novels[i])}});
    }
  }
  void TearDown() override { fs::remove_all(root_); }

  engine::EngineOptions options_for(int i) const {
    engine::EngineOptions o;
    o.home = root_ / ("home" + std::to_string(i));
    o.key = privacy::MasterKeySource::from_raw_key(kFederationKey);
    return o;
  }

  engine::FederatedServerOptions server_options(int port) const {
    engine::FederatedServerOptions o;
    o.port = port;
    o.base = testing::stories_nf4_spec();
    engine::TrainingSpec& t = o.settings.local;
    t.rank = 4;
    t.steps = 3;
    t.seq_len = 64;
    t.batch = 4;
    t.lr = 5e-3;
    t.optimizer = "adamw";
    t.eval_max_rows = 4;
    t.seed = 9;
    o.settings.round_timeout_seconds = 60;
    o.settings.clip = 10;
    o.rounds = 2;
    o.cohort = 4;
    o.checkin_seconds = 0.5;
    o.straggler_seconds = 3;  // client 3 never reports in its dropped round
    o.join_timeout_seconds = 60;
    o.seed = 17;
    o.out = root_ / "server";
    return o;
  }

  // Runs the coordinator and four clients (client 3 drops out of `drop_round`) to the end.
  engine::FederatedServerReport run(engine::FederatedServerOptions o, int drop_round) {
    o.observe = [this](const std::string& what, const at::Tensor& t) {
      std::lock_guard<std::mutex> lock(mu_);
      received_.emplace_back(what, t.clone());
    };
    engine::FederatedServerReport report;
    std::exception_ptr server_error;
    std::thread server([&] {
      try {
        report = engine::run_federated_coordinator(o);
      } catch (...) {
        server_error = std::current_exception();
      }
    });
    std::vector<std::thread> clients;
    std::vector<std::exception_ptr> errors(4);
    client_reports_.assign(4, {});
    for (int i = 0; i < 4; ++i) {
      clients.emplace_back([&, i] {
        try {
          engine::Engine e(options_for(i));
          e.load_base(testing::stories_nf4_spec());
          engine::FederatedClientOptions c;
          c.port = o.port;
          c.user = "user" + std::to_string(i);
          c.timeout_seconds = 120;
          c.drop_in_round = i == 3 ? drop_round : 0;
          c.observe = [this, i](int64_t round, const at::Tensor& unmasked, const at::Tensor& masked) {
            std::lock_guard<std::mutex> lock(mu_);
            uploads_.push_back({i, round, unmasked.clone(), masked.clone()});
          };
          client_reports_[i] = engine::run_federated_client(e, c);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    }
    for (auto& c : clients) c.join();
    server.join();
    if (server_error) std::rethrow_exception(server_error);
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    return report;
  }

  fs::path root_;
  std::mutex mu_;
  std::vector<std::pair<std::string, at::Tensor>> received_;
  std::vector<Upload> uploads_;
  std::vector<engine::FederatedClientReport> client_reports_;
};

at::Tensor sum_mod(const std::vector<at::Tensor>& ts) {
  at::Tensor s = at::zeros_like(ts.at(0));
  for (const auto& t : ts) s = privacy::add_mod(s, t);
  return s;
}

TEST_F(Federation, RoundsCompleteWithADropoutAndTheCoordinatorSeesOnlySums) {
  const engine::FederatedServerReport report = run(server_options(testing::free_loopback_port()), /*drop_round=*/1);
  ASSERT_EQ(report.clients, 4);
  ASSERT_EQ(report.rounds.size(), 2u);
  EXPECT_EQ(report.rounds[0].outcome, "done");
  EXPECT_EQ(report.rounds[0].cohort, 4);
  EXPECT_EQ(report.rounds[0].survivors, 3);
  EXPECT_EQ(report.rounds[0].dropped, 1);
  EXPECT_EQ(report.rounds[1].outcome, "done");
  EXPECT_EQ(report.rounds[1].survivors, 4);
  EXPECT_EQ(client_reports_[3].rounds_uploaded, 1);
  EXPECT_EQ(client_reports_[3].rounds.at(0).at("outcome"), "dropped out before uploading (simulated)");

  // The coordinator received exactly one masked sum and made one unmasked sum per round.
  std::vector<at::Tensor> masked_sums, sums;
  for (const auto& [what, t] : received_) (what == "masked sum" ? masked_sums : sums).push_back(t);
  ASSERT_EQ(masked_sums.size(), 2u);
  ASSERT_EQ(sums.size(), 2u);
  for (int64_t round = 1; round <= 2; ++round) {
    std::vector<at::Tensor> encodings;
    for (const Upload& u : uploads_)
      if (u.round == round) encodings.push_back(u.unmasked);
    ASSERT_EQ(encodings.size(), round == 1 ? 3u : 4u);
    // Unmasked with the survivors' shares: bitwise the sum of the survivors' encodings.
    EXPECT_TRUE(at::equal(sums[round - 1], sum_mod(encodings))) << "round " << round;
    const at::Tensor& masked = masked_sums[round - 1];
    const int64_t n = masked.numel();
    for (const Upload& u : uploads_) {
      if (u.round != round) continue;
      // Neither sum is any one client's update, masked or not; the masked sum does not even
      // correlate with one (6 standard deviations of the correlation of independent samples).
      EXPECT_FALSE(at::equal(masked, u.unmasked));
      EXPECT_FALSE(at::equal(masked, u.masked));
      EXPECT_FALSE(at::equal(sums[round - 1], u.unmasked));
      const at::Tensor x = masked.to(at::kDouble) - masked.to(at::kDouble).mean();
      const at::Tensor y = u.unmasked.to(at::kDouble) - u.unmasked.to(at::kDouble).mean();
      const double r = (x * y).sum().item<double>() / std::sqrt((x * x).sum().item<double>() * (y * y).sum().item<double>());
      EXPECT_LT(std::abs(r), 6.0 / std::sqrt(double(n))) << "client " << u.client << " round " << round;
    }
  }
  // The log holds aggregates only: no client ids, losses or norms of anyone in particular.
  const std::set<std::string> aggregate_keys{"round", "attempt", "outcome", "cohort", "survivors", "dropped",
                                             "weight_sum", "mean_update_norm", "kept_energy", "seconds"};
  std::istringstream log(read_file(root_ / "server" / "rounds.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) {
    ++lines;
    const Json j = Json::parse(line);
    for (const auto& [key, value] : j.items()) {
      EXPECT_TRUE(aggregate_keys.count(key)) << key;
      EXPECT_FALSE(value.is_array() || value.is_object()) << key;
    }
  }
  EXPECT_EQ(lines, 2);
  // The population adapter moved and was written in PEFT's layout.
  auto pop = SafetensorsFile::open(root_ / "server" / "population" / "adapter_model.safetensors");
  double max_b = 0;
  for (const auto& e : pop->entries())
    if (e.name.find("lora_B") != std::string::npos) max_b = std::max(max_b, pop->tensor(e.name).abs().max().item<double>());
  EXPECT_GT(max_b, 0.0);
}

TEST_F(Federation, UserLevelDpReportsEpsilonFromTheAccountant) {
  engine::FederatedServerOptions o = server_options(testing::free_loopback_port());
  o.rounds = 1;
  o.noise = 1.0;
  o.settings.clip = 0.5;
  const engine::FederatedServerReport report = run(o, /*drop_round=*/0);
  ASSERT_EQ(report.rounds.back().outcome, "done");
  const double q = report.privacy.at("sampling_rate").get<double>();
  EXPECT_DOUBLE_EQ(q, 1.0);  // cohort 4 of 4 clients
  EXPECT_DOUBLE_EQ(report.privacy.at("epsilon").get<double>(), privacy::dp_sgd_epsilon(q, 1.0, 1, 1e-5).epsilon);
  // Every client's update was clipped to 0.5 before it was masked (weights are 1 with DP).
  for (const Upload& u : uploads_) {
    const at::Tensor v = privacy::decode_fixed_point(u.unmasked, 24);
    EXPECT_DOUBLE_EQ(v[v.numel() - 1].item<double>(), 1.0);
    EXPECT_LE(v.narrow(0, 0, v.numel() - 1).norm().item<double>(), 0.5 + 1e-4);
  }
}

}  // namespace
}  // namespace hearth
