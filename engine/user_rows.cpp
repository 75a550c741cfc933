#include "engine/user_rows.h"

#include "core/error.h"
#include "privacy/secret_key.h"
#include "storage/user_data.h"
#include "trainer/user_training_data.h"

namespace hearth::engine {

UserRows load_user_rows(storage::Vault& vault, const std::string& user, const TrainingSpec& spec, const Tokenizer& tokenizer) {
  storage::UserData stored = storage::load_user_data(vault.db(), vault.keyring(), user);
  trainer::DataOptions options;
  options.eval_fraction = spec.eval_fraction;
  trainer::TrainingData docs = trainer::user_training_data(stored, tokenizer, options);
  for (std::string& d : stored.documents) privacy::wipe(d);
  for (storage::TrainingExample& e : stored.examples) {
    for (storage::ChatMessage& m : e.messages) privacy::wipe(m.content);
    privacy::wipe(e.prompt);
    privacy::wipe(e.completion);
  }
  UserRows rows{trainer::pack_documents(docs.train, spec.seq_len), trainer::pack_documents(docs.eval, spec.seq_len)};
  require(rows.train.rows() > 0, ErrorCode::kInvalidArgument,
          "user \"" + user + "\" has too little data for one training row of " + std::to_string(spec.seq_len) +
              " positions; ingest more or lower seq_len");
  return rows;
}

}  // namespace hearth::engine
