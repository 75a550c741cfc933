#include "storage/ingest.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "storage/audit_log.h"
#include "storage/database.h"
#include "storage/keyring.h"
#include "storage/line_reader.h"
#include "storage/record_store.h"
#include "storage/user_store.h"
#include "storage/utf8.h"

namespace fs = std::filesystem;

namespace hearth::storage {

namespace {

enum class FileKind { kDocument, kJsonl };

FileKind kind_of(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".txt" || ext == ".md" || ext == ".markdown") return FileKind::kDocument;
  if (ext == ".jsonl") return FileKind::kJsonl;
  fail(ErrorCode::kInvalidArgument, path.string() + ": unsupported file type \"" + ext +
                                        "\" (use .txt or .md for documents, .jsonl for examples)");
}

// file:line of byte `offset`, for errors inside a whole-file document.
std::string where_in(const std::string& name, const std::string& text, size_t offset) {
  size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  return name + ":" + std::to_string(line);
}

void require_utf8(const std::string& text, const std::string& where) {
  size_t bad = first_invalid_utf8(text);
  require(bad == std::string::npos, ErrorCode::kInvalidArgument, where + ": invalid UTF-8 at byte " + std::to_string(bad));
}

// Redacts every text field of an example; false when the mode drops it.
bool redact_example(TrainingExample& ex, privacy::RedactionMode mode, privacy::RedactionCounts& counts) {
  bool drop = false;
  auto apply = [&](std::string& s) {
    privacy::Redaction r = privacy::redact(s, mode);
    counts += r.counts;
    drop |= r.drop;
    if (!r.drop) s = std::move(r.text);
  };
  for (ChatMessage& m : ex.messages) apply(m.content);
  apply(ex.prompt);
  apply(ex.completion);
  return !drop;
}

// Whether the file holds any byte other than ASCII whitespace (read until the first one).
bool has_content(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) fail(ErrorCode::kIo, "cannot read " + path.string() + ": " + std::strerror(errno));
  int c;
  while ((c = std::getc(f)) != EOF && std::isspace(c)) {
  }
  std::fclose(f);
  return c != EOF;
}

bool is_blank(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); });
}

// An ingest that found nothing to store is refused, so its transaction (a new user included)
// is rolled back.
void require_something_stored(const IngestReport& report) {
  require(report.documents_added + report.examples_added + report.duplicates + report.dropped > 0,
          ErrorCode::kInvalidArgument, "the input holds no text or examples to store (empty or blank); nothing was stored");
}

class Ingester {
 public:
  Ingester(Database& db, Keyring& keyring, const IngestOptions& options, IngestReport& report)
      : records_(db, keyring), options_(options), report_(report) {}

  void document(const fs::path& path) { document_text(path.string(), path.filename().string(), read_file(path, options_.max_document_bytes)); }

  // `where` names the item in errors; `source_name` is what the sealed row keeps as its source.
  void document_text(const std::string& where, const std::string& source_name, std::string text) {
    require(text.size() <= options_.max_document_bytes, ErrorCode::kInvalidArgument,
            where + ": " + std::to_string(text.size()) + " bytes is larger than the " +
                std::to_string(options_.max_document_bytes) + "-byte limit of one document");
    size_t bad = first_invalid_utf8(text);
    require(bad == std::string::npos, ErrorCode::kInvalidArgument,
            where_in(where, text, bad == std::string::npos ? 0 : bad) + ": invalid UTF-8");
    if (is_blank(text)) {
      ++report_.empty;
      return;
    }
    privacy::Redaction r = privacy::redact(text, report_.redaction);
    privacy::wipe(text);
    report_.redactions += r.counts;
    if (r.drop) {
      ++report_.dropped;
      return;
    }
    if (records_.add_document(report_.user_id, r.text, source_name)) ++report_.documents_added;
    else ++report_.duplicates;
    privacy::wipe(r.text);
  }

  void jsonl(const fs::path& path) {
    LineReader reader(path, options_.max_line_bytes);
    std::string line;
    while (reader.next(line)) example_line(path.string() + ":" + std::to_string(reader.line_number()), line);
    privacy::wipe(line);
  }

  void jsonl_text(const std::string& name, const std::string& content) {
    size_t start = 0;
    for (int64_t number = 1; start < content.size(); ++number) {
      size_t end = content.find('\n', start);
      if (end == std::string::npos) end = content.size();
      const std::string where = name + ":" + std::to_string(number);
      require(end - start <= options_.max_line_bytes, ErrorCode::kInvalidArgument,
              where + ": line longer than the " + std::to_string(options_.max_line_bytes) + "-byte limit");
      std::string line = content.substr(start, end - start);
      example_line(where, line);
      privacy::wipe(line);
      start = end + 1;
    }
  }

 private:
  void example_line(const std::string& where, const std::string& line) {
    if (is_blank(line)) return;
    require_utf8(line, where);
    TrainingExample ex = parse_example_line(line, where);
    if (!redact_example(ex, report_.redaction, report_.redactions)) {
      ++report_.dropped;
      return;
    }
    if (records_.add_example(report_.user_id, ex)) ++report_.examples_added;
    else ++report_.duplicates;
  }

  RecordStore records_;
  const IngestOptions& options_;
  IngestReport& report_;
};

}  // namespace

namespace {

// The user (created on first ingest) and their redaction mode, inside the caller's transaction.
void prepare_user(Database& db, Keyring& keyring, const IngestOptions& options, IngestReport& report) {
  UserStore users(db);
  std::optional<UserRecord> user = users.find(options.user);
  if (!user) {
    user = users.create(options.user, options.redaction.value_or(privacy::RedactionMode::kMask), keyring.master());
    report.user_created = true;
  } else if (options.redaction && *options.redaction != user->redaction) {
    users.set_redaction(user->id, *options.redaction);
    user->redaction = *options.redaction;
  }
  report.user_id = user->id;
  report.redaction = user->redaction;
}

void audit_ingest(Database& db, const IngestOptions& options, const IngestReport& report) {
  AuditLog(db).append(options.actor.empty() ? current_os_actor() : options.actor, "ingest", report.user_id,
                      static_cast<int64_t>(report.documents_added + report.examples_added),
                      "files=" + std::to_string(report.files) + " documents=" + std::to_string(report.documents_added) +
                          " examples=" + std::to_string(report.examples_added) +
                          " duplicates=" + std::to_string(report.duplicates) + " dropped=" +
                          std::to_string(report.dropped) + " redacted=" + std::to_string(report.redactions.total()) +
                          " redaction=" + privacy::redaction_mode_name(report.redaction));
}

}  // namespace

void check_ingest_files(const std::vector<fs::path>& files) {
  require(!files.empty(), ErrorCode::kInvalidArgument, "no files to ingest");
  bool any_content = false;
  for (const fs::path& f : files) {
    kind_of(f);
    std::error_code ec;
    require(fs::exists(f, ec), ErrorCode::kNotFound, "file not found: " + f.string());
    require(fs::is_regular_file(f, ec), ErrorCode::kInvalidArgument, f.string() + " is not a regular file");
    any_content = any_content || has_content(f);
  }
  require(any_content, ErrorCode::kInvalidArgument,
          std::string(files.size() == 1 ? files[0].string() + " is" : "the files are all") +
              " empty or blank: nothing to ingest, nothing was stored");
}

IngestReport ingest_files(Database& db, Keyring& keyring, const std::vector<fs::path>& files,
                          const IngestOptions& options) {
  check_ingest_files(files);  // refuse before any work
  IngestReport report;
  Transaction tx(db);
  prepare_user(db, keyring, options, report);
  Ingester ingester(db, keyring, options, report);
  for (const fs::path& f : files) {
    if (kind_of(f) == FileKind::kDocument) ingester.document(f);
    else ingester.jsonl(f);
    ++report.files;
  }
  require_something_stored(report);
  audit_ingest(db, options, report);
  tx.commit();
  return report;
}

IngestReport ingest_items(Database& db, Keyring& keyring, const std::vector<IngestItem>& items,
                          const IngestOptions& options) {
  require(!items.empty(), ErrorCode::kInvalidArgument, "nothing to ingest");
  IngestReport report;
  Transaction tx(db);
  prepare_user(db, keyring, options, report);
  Ingester ingester(db, keyring, options, report);
  for (const IngestItem& item : items) {
    if (item.kind == IngestItem::Kind::kDocument) ingester.document_text(item.name, item.name, item.content);
    else ingester.jsonl_text(item.name, item.content);
    ++report.files;
  }
  require_something_stored(report);
  audit_ingest(db, options, report);
  tx.commit();
  return report;
}

}  // namespace hearth::storage
