#include "storage/vault.h"

#include "core/error.h"
#include "storage/hearth_home.h"

namespace hearth::storage {

Vault::Vault(const std::filesystem::path& home, const privacy::MasterKeySource& source)
    : home_(prepare_home(home)), db_(database_path(home_)), keyring_(db_, unlock_master_key(db_, source)) {}

Vault::Vault(const std::filesystem::path& home, WithoutKey)
    : home_(home), db_(existing_database(home)), keyring_(db_, privacy::SecretKey()), unlocked_(false) {}

std::filesystem::path existing_database(const std::filesystem::path& home) {
  std::filesystem::path db = database_path(home);
  require(std::filesystem::exists(db), ErrorCode::kNotFound, "no Hearth database at " + db.string());
  return db;
}

}  // namespace hearth::storage
