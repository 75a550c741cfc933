#include "storage/record_store.h"

#include "core/error.h"
#include "privacy/aead.h"
#include "privacy/data_key.h"
#include "storage/damaged_record.h"
#include "storage/database.h"
#include "storage/keyring.h"

namespace hearth::storage {

namespace {

// Table names cannot be bound, so each statement exists once per table, spelled out.
struct TableSql {
  const char* table;
  const char* insert;
  const char* select_sealed;
  const char* remove;
  const char* count;
};

const TableSql kDocumentSql{
    "documents",
    "INSERT OR IGNORE INTO documents (user_id, content_hash, sealed, bytes, created) VALUES (?1, ?2, ?3, ?4, ?5)",
    "SELECT sealed FROM documents WHERE id = ?1 AND user_id = ?2",
    "DELETE FROM documents WHERE id = ?1 AND user_id = ?2",
    "SELECT COUNT(*) FROM documents WHERE user_id = ?1"};

const TableSql kExampleSql{
    "examples",
    "INSERT OR IGNORE INTO examples (user_id, content_hash, sealed, bytes, created, format) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "SELECT sealed FROM examples WHERE id = ?1 AND user_id = ?2",
    "DELETE FROM examples WHERE id = ?1 AND user_id = ?2",
    "SELECT COUNT(*) FROM examples WHERE user_id = ?1"};

const TableSql& sql_for(RecordKind kind) { return kind == RecordKind::kDocument ? kDocumentSql : kExampleSql; }

}  // namespace

const char* record_kind_name(RecordKind kind) { return kind == RecordKind::kDocument ? "document" : "example"; }

RecordKind parse_record_kind(std::string_view name) {
  if (name == "document" || name == "documents") return RecordKind::kDocument;
  if (name == "example" || name == "examples") return RecordKind::kExample;
  fail(ErrorCode::kInvalidArgument, "record kind must be document or example, got \"" + std::string(name) + "\"");
}

std::optional<int64_t> RecordStore::insert_sealed(int64_t user_id, RecordKind kind, std::string_view plaintext,
                                                  const char* format) {
  const TableSql& sql = sql_for(kind);
  const privacy::UserKeys& keys = keyring_.user_keys(user_id);
  Statement insert = db_.prepare(sql.insert);
  insert.bind(1, user_id)
      .bind_blob(2, privacy::content_hash(keys, plaintext))
      .bind_blob(3, "")  // sealed once the row id, part of the associated data, exists
      .bind(4, static_cast<int64_t>(plaintext.size()))
      .bind(5, unix_now());
  if (format) insert.bind_text(6, format);
  insert.run();
  if (db_.changes() == 0) return std::nullopt;  // same content already stored for this user
  return db_.last_insert_id();
}

std::optional<int64_t> RecordStore::add_document(int64_t user_id, std::string_view text,
                                                 std::string_view source_name) {
  auto id = insert_sealed(user_id, RecordKind::kDocument, text, nullptr);
  if (!id) return id;
  const privacy::UserKeys& keys = keyring_.user_keys(user_id);
  db_.prepare("UPDATE documents SET sealed = ?1, sealed_source = ?2 WHERE id = ?3")
      .bind_blob(1, privacy::seal(keys.seal, text, {user_id, "documents", *id}))
      .bind_blob(2, privacy::seal(keys.seal, source_name, {user_id, "documents.source", *id}))
      .bind(3, *id)
      .run();
  return id;
}

std::optional<int64_t> RecordStore::add_example(int64_t user_id, const TrainingExample& example) {
  std::string json = canonical_example_json(example);
  auto id = insert_sealed(user_id, RecordKind::kExample, json, example_format_name(example.format));
  if (!id) return id;
  const privacy::UserKeys& keys = keyring_.user_keys(user_id);
  db_.prepare("UPDATE examples SET sealed = ?1 WHERE id = ?2")
      .bind_blob(1, privacy::seal(keys.seal, json, {user_id, "examples", *id}))
      .bind(2, *id)
      .run();
  privacy::wipe(json);
  return id;
}

std::vector<RecordInfo> RecordStore::list(int64_t user_id) {
  std::vector<RecordInfo> out;
  Statement docs = db_.prepare("SELECT id, bytes, created FROM documents WHERE user_id = ?1 ORDER BY id");
  docs.bind(1, user_id);
  while (docs.step()) out.push_back({RecordKind::kDocument, docs.column_int(0), "text", docs.column_int(1), docs.column_int(2)});
  Statement ex = db_.prepare("SELECT id, format, bytes, created FROM examples WHERE user_id = ?1 ORDER BY id");
  ex.bind(1, user_id);
  while (ex.step()) out.push_back({RecordKind::kExample, ex.column_int(0), ex.column_text(1), ex.column_int(2), ex.column_int(3)});
  return out;
}

int64_t RecordStore::count(int64_t user_id, RecordKind kind) {
  Statement s = db_.prepare(sql_for(kind).count);
  s.bind(1, user_id);
  s.step();
  return s.column_int(0);
}

std::string RecordStore::open_column(int64_t user_id, RecordKind kind, int64_t id, bool source) {
  const TableSql& sql = sql_for(kind);
  Statement s = db_.prepare(source ? "SELECT sealed_source FROM documents WHERE id = ?1 AND user_id = ?2"
                                   : sql.select_sealed);
  s.bind(1, id).bind(2, user_id);
  require(s.step(), ErrorCode::kNotFound,
          std::string(record_kind_name(kind)) + " " + std::to_string(id) + " of user " + std::to_string(user_id) +
              " does not exist");
  if (s.column_is_null(0)) return {};
  std::string kind_name = std::string(sql.table) + (source ? ".source" : "");
  const privacy::RecordRef where{user_id, kind_name, id};
  const privacy::SecretKey& key = keyring_.user_keys(user_id).seal;
  return open_record_or_report_damage(where, db_.path(), [&] { return privacy::open(key, s.column_blob(0), where); });
}

std::string RecordStore::open_document(int64_t user_id, int64_t id) {
  return open_column(user_id, RecordKind::kDocument, id, false);
}

std::string RecordStore::open_document_source(int64_t user_id, int64_t id) {
  return open_column(user_id, RecordKind::kDocument, id, true);
}

TrainingExample RecordStore::open_example(int64_t user_id, int64_t id) {
  std::string json = open_column(user_id, RecordKind::kExample, id, false);
  TrainingExample ex = example_from_canonical_json(json, "examples record " + std::to_string(id));
  privacy::wipe(json);
  return ex;
}

bool RecordStore::remove(int64_t user_id, RecordKind kind, int64_t id) {
  db_.prepare(sql_for(kind).remove).bind(1, id).bind(2, user_id).run();
  return db_.changes() > 0;
}

}  // namespace hearth::storage
