// Unlocking a database's master key (and recording how it is derived the first time), and
// the per-user keys unwrapped from it, held in locked memory for the life of one command.
#pragma once
#include <cstdint>
#include <map>
#include <memory>

#include "privacy/data_key.h"
#include "privacy/master_key.h"
#include "privacy/secret_key.h"

namespace hearth::storage {

class Database;

// Returns the master key of `db`. A new database records the source kind, the Argon2id salt
// and cost (for passphrases) and a verifier. kAuthentication "wrong passphrase" / "wrong key"
// when the verifier disagrees, or when the source kind differs from the one recorded.
privacy::SecretKey unlock_master_key(Database& db, const privacy::MasterKeySource& source);

class Keyring {
 public:
  Keyring(Database& db, privacy::SecretKey master) : db_(db), master_(std::move(master)) {}
  const privacy::SecretKey& master() const { return master_; }
  // The user's keys; kNotFound when the user (or their key) no longer exists.
  const privacy::UserKeys& user_keys(int64_t user_id);
  // Forgets the cached keys of one user (after erasure).
  void evict(int64_t user_id) { cache_.erase(user_id); }

 private:
  Database& db_;
  privacy::SecretKey master_;
  std::map<int64_t, std::unique_ptr<privacy::UserKeys>> cache_;
};

}  // namespace hearth::storage
