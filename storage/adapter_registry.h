// The adapter registry: every trained adapter version of a user, with how it was made
// (method, rank, targets, base model fingerprint), its metrics and its sealed file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace hearth::storage {

class Database;
class Keyring;

struct AdapterRecord {
  int64_t id = 0;
  int64_t user_id = 0;
  std::string name;
  int64_t version = 0;  // 1, 2, ... per (user, name); assigned by add()
  std::string method;   // "lora" | "dora" | ...
  int64_t rank = 0;
  std::vector<std::string> targets;  // module names, e.g. {"q_proj", "v_proj"}
  std::string base_fingerprint;      // identifies the base model the adapter was trained on
  Json metrics = Json::object();
  std::string file_path;  // the sealed file, relative to the Hearth home
  std::string sha256;     // of the sealed file
  std::string seal_nonce;  // its seal's nonce, hex ('' for files written before schema 3)
  int64_t created = 0;
};

class AdapterRegistry {
 public:
  AdapterRegistry(Database& db, Keyring& keyring, std::filesystem::path home)
      : db_(db), keyring_(keyring), home_(std::move(home)) {}

  // Seals `file_bytes` (e.g. a PEFT adapter_model.safetensors held in memory) into the user's
  // folder and records the next version of `meta.name`, in one transaction. Returns the record.
  AdapterRecord add(AdapterRecord meta, std::string_view file_bytes);
  std::vector<AdapterRecord> list(int64_t user_id);
  std::optional<AdapterRecord> latest(int64_t user_id, const std::string& name);
  AdapterRecord get(int64_t user_id, int64_t adapter_id);  // kNotFound
  // Decrypts the adapter's file into memory.
  std::string open_file(const AdapterRecord& record);
  void set_metrics(int64_t adapter_id, const Json& metrics);
  // Deletes the row and its file.
  bool remove(int64_t user_id, int64_t adapter_id);

  // Version `version` of (user, name); std::nullopt when there is none.
  std::optional<AdapterRecord> find(int64_t user_id, const std::string& name, int64_t version);
  // The version serving uses: the pinned one if set, else the newest. std::nullopt: none.
  std::optional<AdapterRecord> serving(int64_t user_id, const std::string& name);
  // Pins `version` (kNotFound if it does not exist); version 0 removes the pin.
  void pin(int64_t user_id, const std::string& name, int64_t version);
  std::optional<int64_t> pinned(int64_t user_id, const std::string& name);
  // Keeps the newest `keep` versions of (user, name) and the pinned one; erases the others
  // (rows in one transaction, then their files). Returns the erased versions.
  std::vector<int64_t> keep_newest(int64_t user_id, const std::string& name, int64_t keep);

 private:
  Database& db_;
  Keyring& keyring_;
  std::filesystem::path home_;
};

}  // namespace hearth::storage
