// A sealed record that fails authentication under a key that was verified when the vault
// opened is damaged (changed on disk, or moved from another record): it is reported as
// corruption of that one record, naming it and what to do, not as a wrong key or a bad store.
#pragma once
#include <string>

#include "core/error.h"
#include "privacy/aead.h"

namespace hearth::storage {

// kCorruptFile: "<record> is damaged (...); only this record is affected: ..." with how to
// replace it, or restore the last good backup of the database at `db_path`.
[[noreturn]] void fail_damaged_record(const privacy::RecordRef& where, const std::string& db_path);

// Runs `open` (a decryption of `where`); a kAuthentication failure becomes fail_damaged_record.
template <typename Open>
auto open_record_or_report_damage(const privacy::RecordRef& where, const std::string& db_path, Open&& open) {
  try {
    return open();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuthentication) throw;
    fail_damaged_record(where, db_path);
  }
}

}  // namespace hearth::storage
