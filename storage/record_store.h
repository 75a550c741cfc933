// Documents and training examples of a user, sealed at rest: each row holds a keyed content
// hash for de-duplication and a ciphertext bound to its user, table and row id.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/training_example.h"

namespace hearth::storage {

class Database;
class Keyring;

enum class RecordKind { kDocument, kExample };
const char* record_kind_name(RecordKind kind);  // "document" | "example"
RecordKind parse_record_kind(std::string_view name);

// What can be said about a record without its key.
struct RecordInfo {
  RecordKind kind = RecordKind::kDocument;
  int64_t id = 0;
  std::string format;  // "text" for documents, "chat" / "completion" for examples
  int64_t bytes = 0;   // plaintext size
  int64_t created = 0;
};

class RecordStore {
 public:
  RecordStore(Database& db, Keyring& keyring) : db_(db), keyring_(keyring) {}

  // Seal and insert; std::nullopt when the user already has identical content.
  std::optional<int64_t> add_document(int64_t user_id, std::string_view text, std::string_view source_name);
  std::optional<int64_t> add_example(int64_t user_id, const TrainingExample& example);

  std::vector<RecordInfo> list(int64_t user_id);
  int64_t count(int64_t user_id, RecordKind kind);
  // Decrypts one record. kNotFound when it is not the user's; kCorruptFile naming the record
  // (and only it) when its ciphertext was altered or moved (storage/damaged_record.h).
  std::string open_document(int64_t user_id, int64_t id);
  std::string open_document_source(int64_t user_id, int64_t id);
  TrainingExample open_example(int64_t user_id, int64_t id);
  bool remove(int64_t user_id, RecordKind kind, int64_t id);

 private:
  std::optional<int64_t> insert_sealed(int64_t user_id, RecordKind kind, std::string_view plaintext,
                                       const char* format);
  std::string open_column(int64_t user_id, RecordKind kind, int64_t id, bool source);

  Database& db_;
  Keyring& keyring_;
};

}  // namespace hearth::storage
