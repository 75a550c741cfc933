// A device in federated personalization (`hearth federate join`, hearth_federate_join in the
// C API): joins the coordinator's rendezvous and, in each round it is sampled for, receives the
// population adapter, trains it locally on one user's vault data (decrypted in memory, never
// sent) and sends back only its update, masked so that the coordinator can learn nothing but
// the cohort's sum (engine/federated_protocol.h).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/engine.h"

namespace hearth::engine {

struct FederatedClientOptions {
  std::string addr = "127.0.0.1";  // the coordinator's rendezvous
  int port = 29600;
  std::string user;                // whose data trains (the engine must hold the user and the base model)
  double timeout_seconds = 300;    // how long to wait for the coordinator's next message
  // Simulates a device that goes away mid-round: in this round (1-based) the client trains but
  // leaves before uploading, then comes back for the next rounds. 0: never.
  int drop_in_round = 0;
  // Tests: called with this client's unmasked encoded update and with what it uploads.
  std::function<void(int64_t round, const at::Tensor& unmasked, const at::Tensor& masked)> observe;
};

struct FederatedClientReport {
  int64_t client_id = 0;
  int64_t rounds_sampled = 0, rounds_uploaded = 0;
  std::vector<Json> rounds;  // per round sampled: {round, outcome, eval_loss_before, eval_loss_after, seconds}
  Json to_json() const;
};

// Takes part until the coordinator ends the federation. kIo when the coordinator cannot be
// reached or stops answering; kInvalidArgument when it runs another base model.
FederatedClientReport run_federated_client(Engine& engine, const FederatedClientOptions& options);

}  // namespace hearth::engine
