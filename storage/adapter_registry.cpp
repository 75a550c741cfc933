#include "storage/adapter_registry.h"

#include "core/error.h"
#include "privacy/data_key.h"
#include "storage/damaged_record.h"
#include "storage/database.h"
#include "storage/hearth_home.h"
#include "storage/keyring.h"
#include "storage/orphan_files.h"
#include "storage/sealed_blob_file.h"

namespace fs = std::filesystem;

namespace hearth::storage {

namespace {

constexpr const char* kColumns =
    "SELECT id, user_id, name, version, method, rank, targets, base_fingerprint, metrics, file_path, sha256, created, "
    "seal_nonce FROM adapters ";

AdapterRecord read_adapter(const Statement& s) {
  AdapterRecord r;
  r.id = s.column_int(0);
  r.user_id = s.column_int(1);
  r.name = s.column_text(2);
  r.version = s.column_int(3);
  r.method = s.column_text(4);
  r.rank = s.column_int(5);
  r.targets = parse_json(s.column_text(6), "adapter targets").get<std::vector<std::string>>();
  r.base_fingerprint = s.column_text(7);
  r.metrics = parse_json(s.column_text(8), "adapter metrics");
  r.file_path = s.column_text(9);
  r.sha256 = s.column_text(10);
  r.created = s.column_int(11);
  r.seal_nonce = s.column_text(12);
  return r;
}

std::vector<AdapterRecord> query(Database& db, const std::string& sql, int64_t a, const std::string* name = nullptr,
                                 std::optional<int64_t> b = std::nullopt) {
  Statement s = db.prepare(sql.c_str());
  s.bind(1, a);
  if (name) s.bind_text(2, *name);
  if (b) s.bind(2, *b);
  std::vector<AdapterRecord> out;
  while (s.step()) out.push_back(read_adapter(s));
  return out;
}

}  // namespace

AdapterRecord AdapterRegistry::add(AdapterRecord meta, std::string_view file_bytes) {
  require(!meta.name.empty() && meta.name.size() <= 200, ErrorCode::kInvalidArgument, "adapter name must be 1-200 bytes");
  require(meta.rank > 0, ErrorCode::kInvalidArgument, "adapter rank must be positive");
  const privacy::UserKeys& keys = keyring_.user_keys(meta.user_id);
  SealedWriteLock writing(home_);  // no sweep removes the file before its row commits
  Transaction tx(db_);
  Statement next = db_.prepare("SELECT COALESCE(MAX(version), 0) + 1 FROM adapters WHERE user_id = ?1 AND name = ?2");
  next.bind(1, meta.user_id).bind_text(2, meta.name);
  next.step();
  meta.version = next.column_int(0);
  meta.created = unix_now();
  Statement insert = db_.prepare(
      "INSERT INTO adapters (user_id, name, version, method, rank, targets, base_fingerprint, metrics, file_path, "
      "sha256, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '', '', ?9)");
  insert.bind(1, meta.user_id).bind_text(2, meta.name).bind(3, meta.version).bind_text(4, meta.method)
      .bind(5, meta.rank).bind_text(6, Json(meta.targets).dump()).bind_text(7, meta.base_fingerprint)
      .bind_text(8, meta.metrics.dump()).bind(9, meta.created).run();
  meta.id = db_.last_insert_id();
  // The file name is the row id: it says nothing about the adapter's name.
  fs::path rel = fs::path("users") / std::to_string(meta.user_id) / ("adapter-" + std::to_string(meta.id) + ".sealed");
  user_files_dir(home_, meta.user_id);
  meta.file_path = rel.string();
  const SealedBlobStamp stamp =
      write_sealed_blob(home_ / rel, file_bytes, keys.seal, {meta.user_id, "adapter_file", meta.id});
  meta.sha256 = stamp.sha256;
  meta.seal_nonce = stamp.nonce;
  try {
    db_.prepare("UPDATE adapters SET file_path = ?1, sha256 = ?2, seal_nonce = ?3 WHERE id = ?4")
        .bind_text(1, meta.file_path).bind_text(2, meta.sha256).bind_text(3, meta.seal_nonce).bind(4, meta.id).run();
    tx.commit();
  } catch (...) {
    std::error_code ec;
    fs::remove(home_ / rel, ec);  // no file without its row
    throw;
  }
  return meta;
}

std::vector<AdapterRecord> AdapterRegistry::list(int64_t user_id) {
  return query(db_, std::string(kColumns) + "WHERE user_id = ?1 ORDER BY name, version", user_id);
}

std::optional<AdapterRecord> AdapterRegistry::latest(int64_t user_id, const std::string& name) {
  auto rows = query(db_, std::string(kColumns) + "WHERE user_id = ?1 AND name = ?2 ORDER BY version DESC LIMIT 1",
                    user_id, &name);
  if (rows.empty()) return std::nullopt;
  return rows[0];
}

AdapterRecord AdapterRegistry::get(int64_t user_id, int64_t adapter_id) {
  auto rows = query(db_, std::string(kColumns) + "WHERE user_id = ?1 AND id = ?2", user_id, nullptr, adapter_id);
  require(!rows.empty(), ErrorCode::kNotFound,
          "adapter " + std::to_string(adapter_id) + " of user " + std::to_string(user_id) + " does not exist");
  return rows[0];
}

std::string AdapterRegistry::open_file(const AdapterRecord& r) {
  const privacy::RecordRef where{r.user_id, "adapter_file", r.id};
  const privacy::SecretKey& key = keyring_.user_keys(r.user_id).seal;
  return open_record_or_report_damage(where, db_.path(),
                                      [&] { return read_sealed_blob(home_ / r.file_path, {r.sha256, r.seal_nonce}, key, where); });
}

void AdapterRegistry::set_metrics(int64_t adapter_id, const Json& metrics) {
  db_.prepare("UPDATE adapters SET metrics = ?1 WHERE id = ?2").bind_text(1, metrics.dump()).bind(2, adapter_id).run();
}

bool AdapterRegistry::remove(int64_t user_id, int64_t adapter_id) {
  AdapterRecord r = get(user_id, adapter_id);
  db_.prepare("DELETE FROM adapters WHERE id = ?1 AND user_id = ?2").bind(1, adapter_id).bind(2, user_id).run();
  std::error_code ec;
  fs::remove(home_ / r.file_path, ec);
  return true;
}

std::optional<AdapterRecord> AdapterRegistry::find(int64_t user_id, const std::string& name, int64_t version) {
  Statement s = db_.prepare((std::string(kColumns) + "WHERE user_id = ?1 AND name = ?2 AND version = ?3").c_str());
  s.bind(1, user_id).bind_text(2, name).bind(3, version);
  if (!s.step()) return std::nullopt;
  return read_adapter(s);
}

std::optional<AdapterRecord> AdapterRegistry::serving(int64_t user_id, const std::string& name) {
  if (std::optional<int64_t> v = pinned(user_id, name)) {
    if (std::optional<AdapterRecord> r = find(user_id, name, *v)) return r;
  }
  return latest(user_id, name);
}

void AdapterRegistry::pin(int64_t user_id, const std::string& name, int64_t version) {
  if (version == 0) {
    db_.prepare("DELETE FROM adapter_pins WHERE user_id = ?1 AND name = ?2").bind(1, user_id).bind_text(2, name).run();
    return;
  }
  require(find(user_id, name, version).has_value(), ErrorCode::kNotFound,
          "adapter \"" + name + "\" has no version " + std::to_string(version) + " to pin");
  db_.prepare("INSERT OR REPLACE INTO adapter_pins (user_id, name, version) VALUES (?1, ?2, ?3)")
      .bind(1, user_id).bind_text(2, name).bind(3, version).run();
}

std::optional<int64_t> AdapterRegistry::pinned(int64_t user_id, const std::string& name) {
  Statement s = db_.prepare("SELECT version FROM adapter_pins WHERE user_id = ?1 AND name = ?2");
  s.bind(1, user_id).bind_text(2, name);
  if (!s.step()) return std::nullopt;
  return s.column_int(0);
}

std::vector<int64_t> AdapterRegistry::keep_newest(int64_t user_id, const std::string& name, int64_t keep) {
  require(keep >= 1, ErrorCode::kInvalidArgument, "keep at least one adapter version");
  const std::optional<int64_t> pin = pinned(user_id, name);
  std::vector<int64_t> erased;
  std::vector<std::string> files;
  {
    Transaction tx(db_);
    Statement s = db_.prepare(
        "SELECT id, version, file_path FROM adapters WHERE user_id = ?1 AND name = ?2 ORDER BY version DESC LIMIT -1 OFFSET ?3");
    s.bind(1, user_id).bind_text(2, name).bind(3, keep);
    std::vector<int64_t> ids;
    while (s.step()) {
      if (pin && s.column_int(1) == *pin) continue;
      ids.push_back(s.column_int(0));
      erased.push_back(s.column_int(1));
      files.push_back(s.column_text(2));
    }
    for (int64_t id : ids) db_.prepare("DELETE FROM adapters WHERE id = ?1").bind(1, id).run();
    tx.commit();
  }
  std::error_code ec;
  for (const std::string& rel : files) fs::remove(home_ / rel, ec);
  return erased;
}

}  // namespace hearth::storage
