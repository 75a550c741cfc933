// PII redaction at ingest: finds e-mail addresses, phone numbers, payment cards (Luhn),
// IBANs (mod 97), US social security numbers and IP addresses, then masks them or drops the record.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::privacy {

enum class PiiKind { kEmail, kPhone, kCard, kIban, kSsn, kIp };
inline constexpr size_t kPiiKinds = 6;
const char* pii_kind_name(PiiKind kind);  // "email", "phone", ...
const char* pii_mask(PiiKind kind);       // "[EMAIL]", "[PHONE]", ...

// off: store text as given. mask: replace each finding by its placeholder ("[EMAIL]").
// drop: a record (document or example) with any finding is not stored at all.
enum class RedactionMode { kOff, kMask, kDrop };
RedactionMode parse_redaction_mode(std::string_view name);  // kInvalidArgument for others
const char* redaction_mode_name(RedactionMode mode);

struct PiiSpan {
  size_t begin = 0;
  size_t end = 0;  // one past the last byte
  PiiKind kind = PiiKind::kEmail;
};

// Every finding in `text`, sorted, non-overlapping (earlier detectors in the order above win).
std::vector<PiiSpan> find_pii(std::string_view text);

struct RedactionCounts {
  std::array<size_t, kPiiKinds> found{};
  size_t total() const;
  RedactionCounts& operator+=(const RedactionCounts& other);
};

struct Redaction {
  std::string text;       // the masked text (kMask), or the text unchanged
  RedactionCounts counts;
  bool drop = false;      // kDrop and something was found
};

Redaction redact(std::string_view text, RedactionMode mode);

}  // namespace hearth::privacy
