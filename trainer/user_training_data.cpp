#include "trainer/user_training_data.h"

#include "privacy/secret_key.h"
#include "storage/training_example.h"

namespace hearth::trainer {

TrainingData user_training_data(const storage::UserData& data, const Tokenizer& tokenizer, const DataOptions& options) {
  TrainingData out;
  for (size_t i = 0; i < data.documents.size(); ++i) {
    add_file_documents("document " + std::to_string(i + 1), data.documents[i], tokenizer, options, out);
  }
  if (!data.examples.empty()) {
    std::string jsonl;
    for (const storage::TrainingExample& e : data.examples) jsonl += storage::canonical_example_json(e) + "\n";
    add_file_documents("examples.jsonl", jsonl, tokenizer, options, out);
    privacy::wipe(jsonl);  // a plaintext copy: do not leave it in freed memory
  }
  return out;
}

}  // namespace hearth::trainer
