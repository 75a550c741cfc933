// A user's stored data as training rows: decrypted in memory, tokenized, split into training and
// held-out parts and packed; the plaintext is wiped once tokenized. Jobs and federated rounds
// both train on it; nothing is written anywhere.
#pragma once
#include <string>

#include "engine/job_spec.h"
#include "inference/tokenizer/tokenizer.h"
#include "storage/vault.h"
#include "trainer/packing.h"

namespace hearth::engine {

struct UserRows {
  trainer::PackedRows train, eval;
};

// kInvalidArgument when the user has too little data for one training row of spec.seq_len.
UserRows load_user_rows(storage::Vault& vault, const std::string& user, const TrainingSpec& spec, const Tokenizer& tokenizer);

}  // namespace hearth::engine
