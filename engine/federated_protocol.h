// What the coordinator and the clients of federated personalization agree on: the federation's
// settings (published once in the rendezvous store), the store keys of a round, the secret
// sharing threshold, and the encoding of one client's upload. Both sides include this; the
// roles live in federated_coordinator.h and federated_client.h.
//
// A round (attempt n): the coordinator opens it, clients that are available check in, the
// coordinator samples a cohort and broadcasts the population adapter over a Gloo group of the
// cohort; cohort clients publish X25519 public keys, Shamir-share their self-mask seed and secret
// key with each other (sealed pairwise), train locally, and report "trained". The survivors (who
// reported before the deadline) form a second Gloo group in which their masked uploads are
// summed to the coordinator (a reduce: it never receives one upload alone); then each survivor
// reveals its shares of the survivors' seeds and of the dropped clients' keys, the coordinator
// removes the masks from the sum, and the population adapter moves by the weighted mean update.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/json.h"
#include "engine/job_spec.h"
#include "privacy/secure_aggregation.h"

namespace hearth::engine {

struct FederatedSettings {
  TrainingSpec local;             // each client's local training (LoRA shape, steps, lr, batch, seq_len)
  std::string base_fingerprint;   // clients must run the same base model
  int64_t update_size = 0;        // values of one update: the adapter's products, plus the weight
  double clip = 0;                // L2 bound on one client's update (0: none); required with DP
  bool dp = false;                // user-level DP: uniform weights, Gaussian noise on the sum
  double weight_cap_tokens = 20000;  // weight of a client = min(its training tokens / cap, 1)
  int frac_bits = 24;             // fixed point of the masked encoding
  double round_timeout_seconds = 120;  // how long a cohort has to train and report

  Json to_json() const;
  static FederatedSettings from_json(const Json& j);
};

// Shares needed to rebuild a secret of a cohort of k: a majority (at least 2).
int secret_threshold(int cohort_size);

// Store keys of attempt n ("fed/round/<n>/<what>").
std::string round_key(int64_t n, const std::string& what);

// Hex for the store's string values.
std::string to_hex(const std::string& bytes);
std::string from_hex(const std::string& hex, const std::string& what);
std::string key_bytes(const privacy::Key32& key);
privacy::Key32 key_from_bytes(const std::string& bytes, const std::string& what);

// The vector a client masks: [w·clip(delta) ..., w], encoded in fixed point mod 2^48.
at::Tensor encode_update(const at::Tensor& delta, double weight, const FederatedSettings& s);
// The sum back: (Σ w·delta, Σ w) in double.
std::pair<at::Tensor, double> decode_update_sum(const at::Tensor& encoded_sum, const FederatedSettings& s);

// Scales `delta` to L2 norm at most `clip` (0: unchanged); returns the factor applied.
double clip_update_(at::Tensor& delta, double clip);

}  // namespace hearth::engine
