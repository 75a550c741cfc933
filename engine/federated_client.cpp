#include "engine/federated_client.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "adapters/adapter.h"
#include "core/error.h"
#include "engine/federated_protocol.h"
#include "engine/training_plan.h"
#include "privacy/shamir.h"
#include "trainer/process_group.h"

namespace hearth::engine {
namespace {

using privacy::Key32;

struct Share {
  int x = 0;
  std::string seed, key;  // this client's share of a peer's self-mask seed and secret key
};

class Client {
 public:
  Client(Engine& engine, const FederatedClientOptions& o) : engine_(engine), o_(o) {
    require(!o.user.empty(), ErrorCode::kInvalidArgument, "a federated client trains one user's data: give --user");
    rdv_ = trainer::Rendezvous::join(o.addr, o.port, o.timeout_seconds);
    settings_ = FederatedSettings::from_json(Json::parse(rdv_->get("fed/settings", "the federation's settings")));
    const LoadedModel& base = engine_.base();
    require(base.fingerprint == settings_.base_fingerprint, ErrorCode::kInvalidArgument,
            "the coordinator trains over another base model (fingerprint " + settings_.base_fingerprint.substr(0, 12) +
                "…, this client has " + base.fingerprint.substr(0, 12) + "…); load the same --model and --quant");
    population_ = Adapter::create(*base.decoder, adapter_config_of(settings_.local));
    id_ = rdv_->add("fed/clients", 1);
    report_.client_id = id_;
    spdlog::info("federation: joined as client {}", id_);
  }

  FederatedClientReport run() {
    for (int64_t n = 1;; ++n) {
      const Json open = Json::parse(rdv_->get(round_key(n, "open"), "the coordinator's next round", o_.timeout_seconds));
      if (open.value("finished", false)) break;
      const int64_t round = open.at("round").get<int64_t>();
      rdv_->set(round_key(n, "here/" + std::to_string(id_)), "1");
      rdv_->add(round_key(n, "here_count"), 1);
      const std::vector<int64_t> cohort =
          Json::parse(rdv_->get(round_key(n, "cohort"), "the round's cohort", o_.timeout_seconds)).get<std::vector<int64_t>>();
      if (std::find(cohort.begin(), cohort.end(), id_) != cohort.end()) {
        ++report_.rounds_sampled;
        Json line{{"round", round}, {"attempt", n}};
        try {
          line["outcome"] = take_part(n, round, cohort, line);
        } catch (const Error& e) {
          line["outcome"] = std::string("left the round: ") + e.what();
        }
        spdlog::info("round {}: {}", round, line["outcome"].get<std::string>());
        report_.rounds.push_back(line);
      }
      rdv_->get(round_key(n, "status"), "the round's end", o_.timeout_seconds + settings_.round_timeout_seconds);
    }
    return report_;
  }

 private:
  std::string take_part(int64_t n, int64_t round, const std::vector<int64_t>& cohort, Json& line) {
    const int k = int(cohort.size()), t = secret_threshold(k);
    const int me = int(std::find(cohort.begin(), cohort.end(), id_) - cohort.begin());
    const std::string context = "hearth federated round " + std::to_string(n);
    const privacy::AgreementKeys keys = privacy::AgreementKeys::generate();
    rdv_->set(round_key(n, "pk/" + std::to_string(id_)), to_hex(key_bytes(keys.public_key)));
    receive_population(n, me, k);

    // Pairwise seeds with every other member, then shares of this client's self-mask seed and
    // secret key, each sealed for its recipient.
    std::map<int64_t, Key32> seeds;
    for (int64_t peer : cohort) {
      if (peer == id_) continue;
      const std::string pk = from_hex(rdv_->get(round_key(n, "pk/" + std::to_string(peer)), "a peer's public key", settings_.round_timeout_seconds), "a key");
      seeds[peer] = privacy::pairwise_seed(keys, key_from_bytes(pk, "a peer's public key"), context);
    }
    Key32 self_seed{};
    randombytes_buf(self_seed.data(), self_seed.size());
    const auto seed_shares = privacy::shamir_split(key_bytes(self_seed), k, t);
    const auto key_shares = privacy::shamir_split(key_bytes(keys.secret_key), k, t);
    std::map<int64_t, Share> held;  // shares of each member's secrets this client holds (its own included)
    held[id_] = Share{me + 1, seed_shares[me].y, key_shares[me].y};
    for (int j = 0; j < k; ++j) {
      const int64_t peer = cohort[j];
      if (peer == id_) continue;
      const Json msg{{"x", j + 1}, {"seed", to_hex(seed_shares[j].y)}, {"key", to_hex(key_shares[j].y)}};
      const std::string ad = context + " share " + std::to_string(id_) + "->" + std::to_string(peer);
      rdv_->set(round_key(n, "share/" + std::to_string(id_) + "/" + std::to_string(peer)),
                to_hex(privacy::seal_message(privacy::pairwise_message_key(seeds[peer]), msg.dump(), ad)));
    }
    for (int64_t peer : cohort) {
      if (peer == id_) continue;
      const std::string ad = context + " share " + std::to_string(peer) + "->" + std::to_string(id_);
      const std::string sealed =
          from_hex(rdv_->get(round_key(n, "share/" + std::to_string(peer) + "/" + std::to_string(id_)), "a peer's shares",
                    settings_.round_timeout_seconds), "a share");
      std::string plain = privacy::open_message(privacy::pairwise_message_key(seeds[peer]), sealed, ad);
      const Json msg = Json::parse(plain);
      sodium_memzero(plain.data(), plain.size());
      held[peer] = Share{msg.at("x").get<int>(), from_hex(msg.at("seed").get<std::string>(), "a share"),
                         from_hex(msg.at("key").get<std::string>(), "a share")};
    }

    // Local training on the user's own data; only the masked update leaves.
    const LocalUpdate update = engine_.train_local_update(o_.user, *population_, settings_.local);
    line["eval_loss_before"] = update.eval_loss_before;
    line["eval_loss_after"] = update.eval_loss_after;
    line["seconds"] = update.seconds;
    if (o_.drop_in_round == round && !dropped_once_) {
      dropped_once_ = true;  // a device goes away once; if the round is re-formed it takes part
      return "dropped out before uploading (simulated)";
    }
    at::Tensor delta = update.delta.clone();
    clip_update_(delta, settings_.clip);
    const double weight = settings_.dp ? 1.0 : std::min(1.0, double(update.trained_tokens) / settings_.weight_cap_tokens);
    const at::Tensor encoded = encode_update(delta, weight, settings_);
    const at::Tensor masked = privacy::mask_update(encoded, id_, self_seed, seeds);
    if (o_.observe) o_.observe(round, encoded, masked);
    rdv_->set(round_key(n, "trained/" + std::to_string(id_)), "1");

    const Json survivors_json = Json::parse(rdv_->get(round_key(n, "survivors"), "the round's survivors",
                                                      settings_.round_timeout_seconds + o_.timeout_seconds));
    if (survivors_json.is_object()) return "round aborted by the coordinator: " + survivors_json.value("aborted", std::string());
    const std::vector<int64_t> survivors = survivors_json.get<std::vector<int64_t>>();
    const auto pos = std::find(survivors.begin(), survivors.end(), id_);
    if (pos == survivors.end()) return "too late for the round's sum";
    {
      trainer::ProcessGroup sum(rdv_, round_key(n, "sum/"), int(pos - survivors.begin()) + 1, int(survivors.size()) + 1,
                                settings_.round_timeout_seconds, o_.addr);
      at::Tensor upload = masked.clone();
      sum.reduce_sum(upload, 0, "the sum of the masked updates");
    }
    reveal(n, cohort, survivors, held);
    ++report_.rounds_uploaded;
    return "uploaded";
  }

  void receive_population(int64_t n, int me, int k) {
    trainer::ProcessGroup start(rdv_, round_key(n, "start/"), me + 1, k + 1, settings_.round_timeout_seconds, o_.addr);
    std::vector<at::Tensor> params;
    int64_t total = 0;
    for (const auto& [name, p] : population_->named_parameters()) {
      params.push_back(p);
      total += p.numel();
    }
    at::Tensor flat = at::zeros({total}, at::kFloat);
    start.broadcast(flat, 0, "the population adapter's broadcast");
    at::NoGradGuard no_grad;
    int64_t offset = 0;
    for (at::Tensor& p : params) {
      p.copy_(flat.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
  }

  // Survivors' seeds and dropped members' keys: never the other way round (a survivor's key
  // would unmask its pairwise masks, a dropped member's seed nothing useful but still no need).
  void reveal(int64_t n, const std::vector<int64_t>& cohort, const std::vector<int64_t>& survivors,
              const std::map<int64_t, Share>& held) {
    Json seeds = Json::object(), keys = Json::object();
    for (int64_t member : cohort) {
      const auto it = held.find(member);
      if (it == held.end()) continue;
      const bool alive = std::find(survivors.begin(), survivors.end(), member) != survivors.end();
      if (alive) {
        seeds[std::to_string(member)] = Json{{"x", it->second.x}, {"y", to_hex(it->second.seed)}};
      } else {
        keys[std::to_string(member)] = Json{{"x", it->second.x}, {"y", to_hex(it->second.key)}};
      }
    }
    rdv_->set(round_key(n, "reveal/" + std::to_string(id_)), Json{{"seeds", seeds}, {"keys", keys}}.dump());
  }

  Engine& engine_;
  const FederatedClientOptions& o_;
  std::shared_ptr<trainer::Rendezvous> rdv_;
  FederatedSettings settings_;
  std::shared_ptr<Adapter> population_;
  int64_t id_ = 0;
  bool dropped_once_ = false;
  FederatedClientReport report_;
};

}  // namespace

Json FederatedClientReport::to_json() const {
  return Json{{"client_id", client_id}, {"rounds_sampled", rounds_sampled}, {"rounds_uploaded", rounds_uploaded},
              {"rounds", rounds}};
}

FederatedClientReport run_federated_client(Engine& engine, const FederatedClientOptions& options) {
  return Client(engine, options).run();
}

}  // namespace hearth::engine
