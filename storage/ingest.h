// Ingest: text and Markdown files become documents, chat and prompt/completion JSONL become
// examples; each is checked (UTF-8, JSON, size), redacted, de-duplicated and sealed, and the
// whole call is one transaction: one bad line rejects everything, naming file and line.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "privacy/redactor.h"

namespace hearth::storage {

class Database;
class Keyring;

struct IngestOptions {
  std::string user;
  // The redaction mode to use and remember for the user; unset keeps the user's mode
  // (kMask for a new user).
  std::optional<privacy::RedactionMode> redaction;
  size_t max_line_bytes = size_t(8) << 20;       // one JSONL line
  size_t max_document_bytes = size_t(32) << 20;  // one .txt / .md file
  std::string actor;                             // for the audit log
};

struct IngestReport {
  int64_t user_id = 0;
  bool user_created = false;
  privacy::RedactionMode redaction = privacy::RedactionMode::kMask;
  size_t files = 0;
  size_t documents_added = 0;
  size_t examples_added = 0;
  size_t duplicates = 0;  // already stored for this user, or repeated within the call
  size_t dropped = 0;     // records held back by redaction mode "drop"
  size_t empty = 0;       // empty or blank documents skipped
  privacy::RedactionCounts redactions;
};

// What can be refused before the database is opened: no files, a missing file or folder, an
// unsupported type, or files that are all empty or blank (nothing to store). kNotFound /
// kInvalidArgument naming the file.
void check_ingest_files(const std::vector<std::filesystem::path>& files);

// Runs check_ingest_files, then stores everything in one transaction. Files that turn out to
// hold nothing to store (blank lines only) are refused too, and nothing is kept: no rows, no
// new user.
IngestReport ingest_files(Database& db, Keyring& keyring, const std::vector<std::filesystem::path>& files,
                          const IngestOptions& options);

// Data handed over in memory (by an app) rather than as files: a document's text, or JSONL
// lines of chat / prompt-completion examples. `name` names the item in errors only.
struct IngestItem {
  enum class Kind { kDocument, kJsonl };
  Kind kind = Kind::kDocument;
  std::string name;
  std::string content;
};

// Like ingest_files, over in-memory items: the same checks, redaction and single transaction.
IngestReport ingest_items(Database& db, Keyring& keyring, const std::vector<IngestItem>& items,
                          const IngestOptions& options);

}  // namespace hearth::storage
