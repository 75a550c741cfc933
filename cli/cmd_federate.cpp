// `hearth federate serve|join`: federated personalization. serve coordinates the rounds and
// writes the population adapter; join takes part as one device, training one user's vault data
// locally and sending only masked updates (engine/federated_coordinator.h, federated_client.h).
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/engine.h"
#include "engine/federated_client.h"
#include "engine/federated_coordinator.h"
#include "trainer/distributed_options.h"

namespace hearth::cli {
namespace {

struct FederateArgs {
  ModelOptions model;
  engine::FederatedServerOptions server;
  engine::FederatedClientOptions client;
  std::string listen = "127.0.0.1:29600", coordinator = "127.0.0.1:29600";
  std::string key_file;
  std::string out;

  FederateArgs() {
    server.settings.local.steps = 20;
    server.settings.local.seq_len = 64;
    server.settings.local.batch = 4;
    server.settings.local.lr = 3e-3;
    server.settings.local.optimizer = "adamw";
    server.settings.local.eval_max_rows = 16;
  }
};

void serve(FederateArgs& a) {
  std::tie(a.server.addr, a.server.port) = trainer::parse_host_port(a.listen, "--listen");
  a.server.base = a.model.base_spec();
  a.server.out = a.out;
  const engine::FederatedServerReport r = engine::run_federated_coordinator(a.server);
  for (const auto& round : r.rounds) {
    std::printf("round %lld (attempt %lld): %s; cohort %d, survivors %d, dropped %d, mean update norm %.4g%s\n",
                static_cast<long long>(round.round), static_cast<long long>(round.attempt), round.outcome.c_str(), round.cohort,
                round.survivors, round.dropped, round.mean_update_norm,
                round.epsilon_total > 0 ? (", epsilon " + std::to_string(round.epsilon_total)).c_str() : "");
  }
  if (!r.privacy.is_null()) {
    std::printf("user-level DP: sigma %.3g, clip %.3g, q %.3g: epsilon %.3f per round, %.3f over %lld rounds at delta %.0e\n",
                r.privacy["sigma"].get<double>(), r.privacy["clip"].get<double>(), r.privacy["sampling_rate"].get<double>(),
                r.privacy["epsilon_per_round"].get<double>(), r.privacy["epsilon"].get<double>(),
                static_cast<long long>(r.privacy["rounds"].get<int64_t>()), r.privacy["delta"].get<double>());
  }
  if (!a.out.empty()) std::printf("population adapter: %s/population\n", a.out.c_str());
  print_json_result(r.to_json().dump());
}

void join(FederateArgs& a) {
  std::tie(a.client.addr, a.client.port) = trainer::parse_host_port(a.coordinator, "--coordinator");
  // A networked client: the no-network sandbox would forbid the connections each round opens.
  engine::Engine e(engine_options(a.key_file, /*with_key=*/true, /*sandbox=*/false));
  e.load_base(a.model.base_spec());
  const engine::FederatedClientReport r = engine::run_federated_client(e, a.client);
  std::printf("client %lld: sampled in %lld round(s), uploaded in %lld\n", static_cast<long long>(r.client_id),
              static_cast<long long>(r.rounds_sampled), static_cast<long long>(r.rounds_uploaded));
  print_json_result(r.to_json().dump());
}

const CommandRegistration federate_command("federate", [](CLI::App& app) {
  auto a = std::make_shared<FederateArgs>();
  CLI::App* fed = app.add_subcommand("federate", "federated personalization: a coordinator and device clients");
  fed->require_subcommand(1);

  CLI::App* s = fed->add_subcommand("serve", "coordinate rounds and keep the population adapter");
  a->model.add_to(*s, /*with_adapter=*/false);
  engine::FederatedServerOptions& o = a->server;
  engine::TrainingSpec& t = o.settings.local;
  s->add_option("--listen", a->listen, "ADDR:PORT of the rendezvous (loopback unless you mean otherwise)")->capture_default_str();
  s->add_option("--out", a->out, "folder for the population adapter (population/) and rounds.jsonl");
  s->add_option("--rounds", o.rounds, "rounds to run")->capture_default_str();
  s->add_option("--cohort", o.cohort, "clients per round (with --noise: expected, Poisson-sampled)")->capture_default_str();
  s->add_option("--min-clients", o.min_clients, "clients that must join before round 1 (0: --cohort)")->capture_default_str();
  s->add_option("--round-timeout", o.settings.round_timeout_seconds, "seconds a cohort has to train and report")
      ->capture_default_str();
  s->add_option("--straggler-timeout", o.straggler_seconds,
                "once enough clients have reported to remove the masks, seconds to wait for the others")
      ->capture_default_str();
  s->add_option("--join-timeout", o.join_timeout_seconds, "seconds to wait for enough clients")->capture_default_str();
  s->add_option("--server-lr", o.server_lr, "population update = server lr x mean client update")->capture_default_str();
  s->add_option("--clip", o.settings.clip, "L2 bound on each client's update (0: none; required with --noise)")
      ->capture_default_str();
  s->add_option("--noise", o.noise, "user-level DP noise multiplier sigma on the sum (0: off)")->capture_default_str();
  s->add_option("--delta", o.delta, "delta of the reported (epsilon, delta)")->capture_default_str();
  s->add_option("--weight-cap", o.settings.weight_cap_tokens, "a client's weight = min(its trained tokens / cap, 1)")
      ->capture_default_str();
  s->add_option("--seed", o.seed, "cohort sampling and re-factorization seed (0: random)");
  s->add_option("--rank", t.rank, "LoRA rank")->capture_default_str();
  s->add_option("--alpha", t.alpha, "LoRA alpha")->capture_default_str();
  s->add_option("--targets", t.targets, "projections: q,k,v,o,gate,up,down or all")->capture_default_str();
  s->add_option("--local-steps", t.steps, "each client's optimizer updates per round")->capture_default_str();
  s->add_option("--local-lr", t.lr, "each client's learning rate")->capture_default_str();
  s->add_option("--optim", t.optimizer, "clients' optimizer")->check(CLI::IsMember({"adamw", "apollo", "apollo-mini"}))
      ->capture_default_str();
  s->add_option("--batch", t.batch, "rows per local step")->capture_default_str();
  s->add_option("--seq-len", t.seq_len, "positions per packed row")->capture_default_str();
  s->add_option("--local-seed", t.seed, "seed of the clients' data order and of the population's initialization")
      ->capture_default_str();
  s->callback([a] { serve(*a); });

  CLI::App* j = fed->add_subcommand("join", "take part as a device, training one user's data locally");
  a->model.add_to(*j, /*with_adapter=*/false);
  j->add_option("--coordinator", a->coordinator, "ADDR:PORT of the coordinator")->capture_default_str();
  j->add_option("--user", a->client.user, "whose data trains")->required();
  j->add_option("--key-file", a->key_file, "unlock with this key file (mode 600) instead of a passphrase");
  j->add_option("--timeout", a->client.timeout_seconds, "seconds to wait for the coordinator")->capture_default_str();
  j->add_option("--drop-in-round", a->client.drop_in_round,
                "simulate a device that goes away: train in this round but leave before uploading (0: never)")
      ->capture_default_str();
  j->callback([a] { join(*a); });
});

}  // namespace
}  // namespace hearth::cli
