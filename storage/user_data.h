// What the trainer reads: all of a user's documents and examples, decrypted into memory
// (never onto disk), in the order they were ingested.
#pragma once
#include <string>
#include <vector>

#include "storage/training_example.h"

namespace hearth::storage {

class Database;
class Keyring;

struct UserData {
  int64_t user_id = 0;
  std::vector<std::string> documents;      // plain text / Markdown
  std::vector<TrainingExample> examples;   // chat or prompt/completion
};

// kNotFound for an unknown user; kCorruptFile naming the first record that fails to open.
UserData load_user_data(Database& db, Keyring& keyring, const std::string& user_name);

}  // namespace hearth::storage
