// The coordinator of federated personalization (`hearth federate serve`): hosts the rendezvous,
// runs the rounds of engine/federated_protocol.h, and keeps the population adapter, which it
// writes in PEFT's layout after every round. It holds no user data: it learns only the sum of
// each round's masked uploads, unmasked with the survivors' shares, and logs aggregates only.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/federated_protocol.h"
#include "engine/job_spec.h"

namespace hearth::engine {

struct FederatedServerOptions {
  std::string addr = "127.0.0.1";  // where the rendezvous listens (loopback unless told otherwise)
  int port = 29600;
  BaseModelSpec base;
  FederatedSettings settings;      // local training, clipping, weights; fingerprint and size are filled in
  int rounds = 5;
  int cohort = 4;                  // clients per round (with DP: expected, each available client sampled with q)
  int min_clients = 0;             // clients that must have joined before round 1 (0: cohort)
  double server_lr = 1.0;          // population products move by server_lr x the mean update
  double noise = 0;                // sigma > 0 turns on user-level DP: noise std sigma x clip on the sum
  double delta = 1e-5;
  double join_timeout_seconds = 120;  // for enough clients to join / check in
  double checkin_seconds = 1;      // once enough are available, how long to wait for more
  // Once enough of a cohort have reported to remove the masks, how long to wait for the rest
  // (a device that went away never reports; the round then completes with the survivors).
  double straggler_seconds = 20;
  int max_attempts = 3;            // a round whose cohort falls apart is re-formed this often
  uint64_t seed = 0;               // cohort sampling and re-factorization (0: from the OS's random source)
  std::filesystem::path out;       // population adapter (PEFT) and rounds.jsonl; empty: keep in memory
  // Called with what the coordinator receives that has the size of an update (tests use it to
  // check that no individual update ever arrives).
  std::function<void(const std::string& what, const at::Tensor& received)> observe;
};

struct FederatedRoundReport {
  int64_t round = 0, attempt = 0;
  std::string outcome;             // "done" | "aborted: <why>"
  int cohort = 0, survivors = 0, dropped = 0;
  double weight_sum = 0;           // sum of the survivors' weights (with DP: the fixed denominator)
  double mean_update_norm = 0;     // L2 norm of the averaged update (an aggregate)
  double kept_energy = 1;          // share of the new products the rank-r adapter keeps
  double epsilon_round = 0, epsilon_total = 0;
  double seconds = 0;
  Json to_json() const;
};

struct FederatedServerReport {
  int64_t clients = 0;
  std::vector<FederatedRoundReport> rounds;  // every attempt, aborted ones included
  Json privacy;                    // {sigma, clip, q, delta, epsilon} with DP, else null
  Json to_json() const;
};

// Runs every round, then tells the clients the federation is over. kIo when the clients do not
// come (join timeout) or a round fails max_attempts times.
FederatedServerReport run_federated_coordinator(const FederatedServerOptions& options);

}  // namespace hearth::engine
