// An opened Hearth home: the folder, its database and the unlocked keyring, as one object
// that commands and the trainer hold for the length of one piece of work.
#pragma once
#include <filesystem>

#include "privacy/master_key.h"
#include "storage/database.h"
#include "storage/keyring.h"

namespace hearth::storage {

class Vault {
 public:
  // Creates the home (0700) and database if needed, migrates, and unlocks the master key
  // (kAuthentication for a wrong passphrase or key).
  Vault(const std::filesystem::path& home, const privacy::MasterKeySource& source);
  // Opens an existing home without its key (kNotFound when it has no database): enough to list
  // metadata, delete records or forget a user; nothing can be decrypted or sealed.
  struct WithoutKey {};
  Vault(const std::filesystem::path& home, WithoutKey);
  bool unlocked() const { return unlocked_; }

  const std::filesystem::path& home() const { return home_; }
  Database& db() { return db_; }
  Keyring& keyring() { return keyring_; }

 private:
  std::filesystem::path home_;
  Database db_;
  Keyring keyring_;
  bool unlocked_ = true;
};

// Opens the database of `home` without a key: enough to list metadata or to forget a user.
std::filesystem::path existing_database(const std::filesystem::path& home);

}  // namespace hearth::storage
