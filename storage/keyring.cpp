#include "storage/keyring.h"

#include "core/error.h"
#include "storage/damaged_record.h"
#include "storage/database.h"

namespace hearth::storage {

using privacy::MasterKeySource;
using privacy::SecretKey;

namespace {

SecretKey key_from_source(const MasterKeySource& source, const privacy::KdfParams& params) {
  switch (source.kind) {
    case MasterKeySource::Kind::kPassphrase: return privacy::derive_master_key(source.passphrase, params);
    case MasterKeySource::Kind::kKeyFile: return privacy::read_key_file(source.key_file);
    case MasterKeySource::Kind::kRawKey: return SecretKey::from_bytes(source.raw_key);
  }
  fail(ErrorCode::kInternal, "unknown key source");
}

std::string wrong_key_message(const std::string& kind, const Database& db) {
  if (kind == "passphrase") return "wrong passphrase for " + db.path().string();
  if (kind == "key_file") return "wrong key file for " + db.path().string();
  return "wrong key for " + db.path().string();
}

}  // namespace

SecretKey unlock_master_key(Database& db, const MasterKeySource& source) {
  const std::string kind = source.kind_name();
  Transaction tx(db);  // two first-time openers must not both record a salt
  Statement row = db.prepare("SELECT source, salt, opslimit, memlimit, verifier FROM key_config WHERE id = 1");
  if (row.step()) {
    std::string stored_kind = row.column_text(0);
    require(stored_kind == kind, ErrorCode::kAuthentication,
            db.path().string() + " is locked with a " + stored_kind + ", not a " + kind);
    privacy::KdfParams params{row.column_blob(1), static_cast<uint64_t>(row.column_int(2)),
                              static_cast<uint64_t>(row.column_int(3))};
    std::string verifier = row.column_blob(4);
    tx.commit();  // release the lock before the slow key derivation
    SecretKey master = key_from_source(source, params);
    require(privacy::verify_key(master, verifier), ErrorCode::kAuthentication, wrong_key_message(kind, db));
    return master;
  }
  privacy::KdfParams params;
  if (source.kind == MasterKeySource::Kind::kPassphrase) params = privacy::KdfParams::fresh(source.strength);
  SecretKey master = key_from_source(source, params);
  Statement insert = db.prepare(
      "INSERT INTO key_config (id, source, salt, opslimit, memlimit, verifier, created) "
      "VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)");
  insert.bind_text(1, kind);
  if (params.salt.empty()) {
    insert.bind_null(2).bind_null(3).bind_null(4);
  } else {
    insert.bind_blob(2, params.salt).bind(3, static_cast<int64_t>(params.opslimit)).bind(4, static_cast<int64_t>(params.memlimit));
  }
  insert.bind_blob(5, privacy::key_verifier(master)).bind(6, unix_now()).run();
  tx.commit();
  return master;
}

const privacy::UserKeys& Keyring::user_keys(int64_t user_id) {
  auto it = cache_.find(user_id);
  if (it != cache_.end()) return *it->second;
  Statement s = db_.prepare("SELECT wrapped_key FROM users WHERE id = ?1");
  s.bind(1, user_id);
  require(s.step() && !s.column_is_null(0), ErrorCode::kNotFound,
          "user " + std::to_string(user_id) + " has no data key (the user was forgotten or never existed)");
  const std::string wrapped = s.column_blob(0);
  SecretKey data_key = open_record_or_report_damage({user_id, "users.wrapped_key", user_id}, db_.path(),
                                                    [&] { return privacy::unwrap_data_key(master_, wrapped, user_id); });
  auto keys = std::make_unique<privacy::UserKeys>(privacy::UserKeys::derive(data_key));
  return *cache_.emplace(user_id, std::move(keys)).first->second;
}

}  // namespace hearth::storage
