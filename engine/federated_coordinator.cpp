#include "engine/federated_coordinator.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "adapters/adapter.h"
#include "adapters/low_rank_product.h"
#include "adapters/peft_files.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "engine/training_plan.h"
#include "inference/model_loader.h"
#include "privacy/rdp_accountant.h"
#include "privacy/shamir.h"
#include "trainer/process_group.h"

namespace hearth::engine {
namespace {

using Clock = std::chrono::steady_clock;
using privacy::Key32;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void pause_briefly() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

// A round that cannot complete: the cohort is told, and the round is formed again.
struct RoundAborted {
  std::string why;
};

class Coordinator {
 public:
  explicit Coordinator(const FederatedServerOptions& o) : o_(o), settings_(o.settings) {
    require(o.rounds > 0 && o.cohort >= 2 && o.max_attempts > 0, ErrorCode::kInvalidArgument,
            "a federation needs --rounds >= 1 and --cohort >= 2 (one client's sum would be its own update)");
    require(o.server_lr > 0 && o.noise >= 0 && o.delta > 0 && o.delta < 1, ErrorCode::kInvalidArgument,
            "--server-lr must be positive, --noise not negative and --delta in (0, 1)");
    require(o.straggler_seconds > 0 && settings_.round_timeout_seconds > 0, ErrorCode::kInvalidArgument,
            "--straggler-timeout and --round-timeout must be positive");
    settings_.local.validate();
    require(settings_.local.method == "lora", ErrorCode::kInvalidArgument, "federated rounds average LoRA adapters; use --method lora");
    settings_.dp = o.noise > 0;
    require(!settings_.dp || settings_.clip > 0, ErrorCode::kInvalidArgument,
            "user-level DP needs a clipping bound: give --clip with --noise");
    uint64_t seed = o.seed;
    if (seed == 0) randombytes_buf(&seed, sizeof(seed));
    rng_.seed(seed);
    seed_ = seed;
    LoadOptions load = o.base.load_options();
    load.row_tiles = false;  // training reads the row-major codes only
    model_ = load_model(o.base.path, load, o.base.tokenizer);
    population_ = Adapter::create(*model_.decoder, adapter_config_of(settings_.local));
    settings_.base_fingerprint = model_.fingerprint;
    settings_.update_size = lora_products_size(*population_) + 1;
  }

  FederatedServerReport run() {
    rdv_ = trainer::Rendezvous::host(o_.addr, o_.port, o_.join_timeout_seconds);
    rdv_->set("fed/settings", settings_.to_json().dump());
    const int64_t wanted = o_.min_clients > 0 ? o_.min_clients : o_.cohort;
    spdlog::info("federation: listening on {}:{}, waiting for {} clients", o_.addr, o_.port, wanted);
    const auto t0 = Clock::now();
    while (rdv_->add("fed/clients", 0) < wanted) {
      require(since(t0) < o_.join_timeout_seconds, ErrorCode::kIo,
              "only " + std::to_string(rdv_->add("fed/clients", 0)) + " of " + std::to_string(wanted) +
                  " clients joined within " + std::to_string(int(o_.join_timeout_seconds)) +
                  " s; start more clients (hearth federate join) or lower --min-clients");
      pause_briefly();
    }
    report_.clients = rdv_->add("fed/clients", 0);
    if (settings_.dp) q_ = std::min(1.0, double(o_.cohort) / double(report_.clients));
    save_population(0);
    int64_t n = 0;
    for (int64_t round = 1; round <= o_.rounds; ++round) {
      bool done = false;
      for (int attempt = 1; attempt <= o_.max_attempts && !done; ++attempt) {
        FederatedRoundReport r = run_attempt(++n, round, attempt);
        done = r.outcome == "done";
        spdlog::info("round {} (attempt {}): {}; cohort {}, survivors {}, dropped {}", round, attempt, r.outcome, r.cohort,
                     r.survivors, r.dropped);
        log_round(r);
        report_.rounds.push_back(r);
      }
      require(done, ErrorCode::kIo, "round " + std::to_string(round) + " failed " + std::to_string(o_.max_attempts) +
                                        " times (" + report_.rounds.back().outcome + "); the clients keep dropping out");
    }
    rdv_->set(round_key(n + 1, "open"), Json{{"finished", true}}.dump());
    if (settings_.dp) report_.privacy = privacy_json(completed_rounds());
    // Clients read the final message before the store goes away with this process.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return report_;
  }

 private:
  int64_t completed_rounds() const {
    int64_t c = 0;
    for (const auto& r : report_.rounds) c += r.outcome == "done";
    return c;
  }

  Json privacy_json(int64_t rounds) const {
    const privacy::PrivacySpent one = privacy::dp_sgd_epsilon(q_, o_.noise, 1, o_.delta);
    const privacy::PrivacySpent all = privacy::dp_sgd_epsilon(q_, o_.noise, std::max<int64_t>(1, rounds), o_.delta);
    return Json{{"sigma", o_.noise},       {"clip", settings_.clip},   {"sampling_rate", q_}, {"delta", o_.delta},
                {"epsilon_per_round", one.epsilon}, {"epsilon", all.epsilon}, {"rounds", rounds},
                {"accountant", "RDP, sampled Gaussian (privacy/rdp_accountant.h)"}};
  }

  FederatedRoundReport run_attempt(int64_t n, int64_t round, int attempt) {
    FederatedRoundReport r;
    r.round = round;
    r.attempt = attempt;
    const auto t0 = Clock::now();
    try {
      aggregate(n, r);
      r.outcome = "done";
      rdv_->set(round_key(n, "status"), "done");
    } catch (const RoundAborted& a) {
      r.outcome = "aborted: " + a.why;
      if (!rdv_->has(round_key(n, "cohort"))) rdv_->set(round_key(n, "cohort"), "[]");
      if (!rdv_->has(round_key(n, "survivors"))) rdv_->set(round_key(n, "survivors"), Json{{"aborted", a.why}}.dump());
      rdv_->set(round_key(n, "status"), r.outcome);
    }
    r.seconds = since(t0);
    return r;
  }

  std::vector<int64_t> check_ins(int64_t n) {
    const auto t0 = Clock::now();
    const int64_t needed = settings_.dp ? 2 : o_.cohort;
    Clock::time_point enough_since{};
    bool enough = false;
    while (true) {
      const int64_t here = rdv_->add(round_key(n, "here_count"), 0), clients = rdv_->add("fed/clients", 0);
      if (!enough && here >= needed) {
        enough = true;
        enough_since = Clock::now();
      }
      if (here >= clients || (enough && since(enough_since) >= o_.checkin_seconds)) break;
      if (since(t0) >= o_.join_timeout_seconds) break;
      pause_briefly();
    }
    std::vector<int64_t> available;
    const int64_t clients = rdv_->add("fed/clients", 0);
    for (int64_t id = 1; id <= clients; ++id)
      if (rdv_->has(round_key(n, "here/" + std::to_string(id)))) available.push_back(id);
    return available;
  }

  std::vector<int64_t> sample(const std::vector<int64_t>& available) {
    std::vector<int64_t> cohort;
    if (settings_.dp) {
      // Poisson sampling with rate q: what the RDP accountant's sampled Gaussian assumes.
      std::bernoulli_distribution pick(q_);
      for (int64_t id : available)
        if (pick(rng_)) cohort.push_back(id);
    } else {
      cohort = available;
      std::shuffle(cohort.begin(), cohort.end(), rng_);
      cohort.resize(std::min<size_t>(cohort.size(), size_t(o_.cohort)));
      std::sort(cohort.begin(), cohort.end());
    }
    return cohort;
  }

  // Waits for every cohort member's "trained" report, until the round's deadline or, once
  // enough have reported to remove the masks, for the stragglers' grace period: a device that
  // went away never reports, and the others should not wait the whole deadline for it.
  std::vector<int64_t> wait_for_survivors(int64_t n, const std::vector<int64_t>& cohort, int threshold) {
    const auto t0 = Clock::now();
    Clock::time_point enough_since{};
    bool enough = false;
    std::vector<int64_t> survivors;
    while (true) {
      survivors.clear();
      for (int64_t id : cohort)
        if (rdv_->has(round_key(n, "trained/" + std::to_string(id)))) survivors.push_back(id);
      if (!enough && int(survivors.size()) >= threshold) {
        enough = true;
        enough_since = Clock::now();
      }
      if (survivors.size() == cohort.size() || since(t0) >= settings_.round_timeout_seconds) return survivors;
      if (enough && since(enough_since) >= o_.straggler_seconds) return survivors;
      pause_briefly();
    }
  }

  void aggregate(int64_t n, FederatedRoundReport& r) {
    rdv_->set(round_key(n, "open"), Json{{"round", r.round}}.dump());
    const std::vector<int64_t> available = check_ins(n);
    const std::vector<int64_t> cohort = sample(available);
    r.cohort = int(cohort.size());
    if (cohort.size() < 2) throw RoundAborted{std::to_string(available.size()) + " clients available, too few for a cohort"};
    rdv_->set(round_key(n, "cohort"), Json(cohort).dump());
    const int k = int(cohort.size()), t = secret_threshold(k);
    try {
      trainer::ProcessGroup start(rdv_, round_key(n, "start/"), 0, k + 1, settings_.round_timeout_seconds, o_.addr);
      at::Tensor flat = population_flat();
      start.broadcast(flat, 0, "the population adapter's broadcast");
    } catch (const Error& e) {
      throw RoundAborted{std::string("the cohort did not assemble: ") + e.what()};
    }
    const std::vector<int64_t> survivors = wait_for_survivors(n, cohort, t);
    r.survivors = int(survivors.size());
    r.dropped = k - r.survivors;
    if (int(survivors.size()) < t)
      throw RoundAborted{std::to_string(survivors.size()) + " of " + std::to_string(k) + " clients finished; " +
                         std::to_string(t) + " are needed to remove the masks"};
    rdv_->set(round_key(n, "survivors"), Json(survivors).dump());
    at::Tensor masked_sum = at::zeros({settings_.update_size}, at::kLong);
    try {
      trainer::ProcessGroup sum(rdv_, round_key(n, "sum/"), 0, int(survivors.size()) + 1, settings_.round_timeout_seconds,
                                o_.addr);
      sum.reduce_sum(masked_sum, 0, "the sum of the masked updates");
    } catch (const Error& e) {
      throw RoundAborted{std::string("a survivor left during the sum: ") + e.what()};
    }
    masked_sum.bitwise_and_(privacy::kMaskModulus - 1);
    if (o_.observe) o_.observe("masked sum", masked_sum);
    const at::Tensor sum = unmask(n, cohort, survivors, masked_sum, t);
    if (o_.observe) o_.observe("unmasked sum", sum);
    apply(sum, r);
    save_population(r.round);
  }

  // Rebuilds the survivors' self-mask seeds and the dropped clients' keys from the survivors'
  // revealed shares, and removes every mask from the sum.
  at::Tensor unmask(int64_t n, const std::vector<int64_t>& cohort, const std::vector<int64_t>& survivors,
                    const at::Tensor& masked_sum, int t) {
    const std::set<int64_t> alive(survivors.begin(), survivors.end());
    std::map<int64_t, std::vector<privacy::SecretShare>> seed_shares, key_shares;
    int revealed = 0;
    for (int64_t s : survivors) {
      Json j;
      try {
        j = Json::parse(rdv_->get(round_key(n, "reveal/" + std::to_string(s)), "client " + std::to_string(s) + "'s shares",
                                  settings_.round_timeout_seconds));
      } catch (const Error&) {
        continue;  // a survivor that leaves now is fine while enough others reveal
      } catch (const nlohmann::json::exception&) {
        continue;
      }
      ++revealed;
      for (const char* part : {"seeds", "keys"}) {
        for (const auto& [id, share] : j.at(part).items()) {
          const int64_t of = std::stoll(id);
          const bool ok = std::string(part) == "seeds" ? alive.count(of) == 1 : alive.count(of) == 0;
          if (!ok) continue;  // never rebuild a survivor's key or a dropped client's seed
          privacy::SecretShare sh{uint8_t(share.at("x").get<int>()), from_hex(share.at("y").get<std::string>(), "a share")};
          (std::string(part) == "seeds" ? seed_shares : key_shares)[of].push_back(sh);
        }
      }
    }
    if (revealed < t) throw RoundAborted{"only " + std::to_string(revealed) + " survivors revealed their shares"};
    const std::string context = "hearth federated round " + std::to_string(n);
    std::map<int64_t, Key32> seeds, public_keys, dropped_keys;
    for (int64_t s : survivors) {
      seeds[s] = key_from_bytes(privacy::shamir_combine(seed_shares[s], t), "a rebuilt seed");
      public_keys[s] = key_from_bytes(from_hex(rdv_->get(round_key(n, "pk/" + std::to_string(s)), "a public key"), "a key"),
                                      "a public key");
    }
    for (int64_t c : cohort)
      if (!alive.count(c)) dropped_keys[c] = key_from_bytes(privacy::shamir_combine(key_shares[c], t), "a rebuilt key");
    const at::Tensor term = privacy::unmasking_term(settings_.update_size, seeds, public_keys, dropped_keys, context);
    return privacy::add_mod(masked_sum, term, -1);
  }

  // The weighted mean update (with DP: clipped, noised, over the expected cohort) applied to
  // the population's products, then brought back to rank r.
  void apply(const at::Tensor& encoded_sum, FederatedRoundReport& r) {
    auto [sum, weight] = decode_update_sum(encoded_sum, settings_);
    double denominator = weight;
    if (settings_.dp) {
      at::Generator gen = make_generator(mix_seed(seed_, 0x5EC0000 + r.round));
      sum = sum + at::randn(sum.sizes(), gen, at::kDouble) * (o_.noise * settings_.clip);
      denominator = q_ * double(report_.clients);  // fixed: the survivors' count would leak nothing, but this is unbiased
      const int64_t rounds = completed_rounds() + 1;
      r.epsilon_round = privacy::dp_sgd_epsilon(q_, o_.noise, 1, o_.delta).epsilon;
      r.epsilon_total = privacy::dp_sgd_epsilon(q_, o_.noise, rounds, o_.delta).epsilon;
    }
    require(denominator > 0, ErrorCode::kInternal, "the round's weights add up to zero");
    r.weight_sum = denominator;
    const at::Tensor mean = sum / denominator;
    r.mean_update_norm = mean.norm().item<double>();
    const at::Tensor products = lora_products(*population_).to(at::kDouble) + mean * o_.server_lr;
    r.kept_energy = set_lora_from_products(*population_, products.to(at::kFloat), mix_seed(seed_, uint64_t(r.round)));
  }

  at::Tensor population_flat() const {
    std::vector<at::Tensor> parts;
    for (const auto& [name, p] : population_->named_parameters()) parts.push_back(p.detach().reshape({-1}));
    return at::cat(parts).contiguous();
  }

  void save_population(int64_t round) {
    if (o_.out.empty()) return;
    save_peft_adapter(o_.out / "population", *population_, o_.base.path, model_.fingerprint,
                      Json{{"federated_rounds", round}, {"clients", report_.clients}});
  }

  void log_round(const FederatedRoundReport& r) {
    if (o_.out.empty()) return;
    std::filesystem::create_directories(o_.out);
    rounds_log_ += r.to_json().dump() + "\n";
    write_file_atomic(o_.out / "rounds.jsonl", rounds_log_);
  }

  const FederatedServerOptions& o_;
  FederatedSettings settings_;
  LoadedModel model_;
  std::shared_ptr<Adapter> population_;
  std::shared_ptr<trainer::Rendezvous> rdv_;
  std::mt19937_64 rng_;
  uint64_t seed_ = 0;
  double q_ = 1.0;
  FederatedServerReport report_;
  std::string rounds_log_;
};

}  // namespace

Json FederatedRoundReport::to_json() const {
  Json j{{"round", round},         {"attempt", attempt},     {"outcome", outcome},
         {"cohort", cohort},       {"survivors", survivors}, {"dropped", dropped},
         {"weight_sum", weight_sum}, {"mean_update_norm", mean_update_norm}, {"kept_energy", kept_energy},
         {"seconds", seconds}};
  if (epsilon_total > 0) {
    j["epsilon_round"] = epsilon_round;
    j["epsilon_total"] = epsilon_total;
  }
  return j;
}

Json FederatedServerReport::to_json() const {
  Json rs = Json::array();
  for (const auto& r : rounds) rs.push_back(r.to_json());
  return Json{{"clients", clients}, {"rounds", rs}, {"privacy", privacy}};
}

FederatedServerReport run_federated_coordinator(const FederatedServerOptions& options) {
  return Coordinator(options).run();
}

}  // namespace hearth::engine
