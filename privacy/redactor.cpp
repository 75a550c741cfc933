#include "privacy/redactor.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <iterator>

#include "core/error.h"

namespace hearth::privacy {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

// A token must not continue into letters, digits or (for numbers) decimal points, so "12345"
// inside "A12345B" or "3.14159" is never a finding.
bool clear_before(std::string_view t, size_t i) {
  if (i == 0) return true;
  char c = t[i - 1];
  if (is_alnum(c) || c == '_' || c == '@') return false;
  if ((c == '.' || c == '-' || c == '/' || c == ',' || c == ':') && i >= 2 && is_alnum(t[i - 2])) return false;
  return true;
}

bool clear_after(std::string_view t, size_t i) {
  if (i >= t.size()) return true;
  char c = t[i];
  if (is_alnum(c) || c == '_' || c == '@') return false;
  if ((c == '.' || c == '-' || c == '/' || c == ',' || c == ':') && i + 1 < t.size() && is_alnum(t[i + 1])) return false;
  return true;
}

// --- e-mail: local@domain.tld -------------------------------------------------------------
bool is_local_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
bool is_domain_char(char c) { return is_alnum(c) || c == '-' || c == '.'; }

void find_emails(std::string_view t, std::vector<PiiSpan>& out) {
  for (size_t at = t.find('@'); at != std::string_view::npos; at = t.find('@', at + 1)) {
    size_t b = at;
    while (b > 0 && is_local_char(t[b - 1])) --b;
    while (b < at && (t[b] == '.' || t[b] == '-')) ++b;  // sentences put dots before addresses
    size_t e = at + 1;
    while (e < t.size() && is_domain_char(t[e])) ++e;
    while (e > at + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) --e;  // a full stop after the address
    if (b == at || e == at + 1) continue;
    std::string_view domain = t.substr(at + 1, e - at - 1);
    size_t dot = domain.rfind('.');
    if (dot == std::string_view::npos || dot == 0) continue;
    std::string_view tld = domain.substr(dot + 1);
    if (tld.size() < 2 || !std::all_of(tld.begin(), tld.end(), is_alpha)) continue;
    if (domain.find("..") != std::string_view::npos) continue;
    out.push_back({b, e, PiiKind::kEmail});
  }
}

// --- numbers written in groups: cards, phones, SSNs ----------------------------------------
// A maximal run starting at a digit (or '+' / '(') of digits and single separators.
struct NumberRun {
  size_t begin, end;
  std::string digits;
  std::vector<size_t> groups;  // digit count of each group
  std::string seps;            // separators between groups, in order
};

bool is_sep(char c) { return c == ' ' || c == '-' || c == '.'; }

NumberRun scan_run(std::string_view t, size_t b) {
  NumberRun r{b, b, "", {}, ""};
  size_t i = b;
  size_t group = 0;
  while (i < t.size()) {
    char c = t[i];
    if (is_digit(c)) {
      r.digits.push_back(c);
      ++group;
      ++i;
      r.end = i;
    } else if (c == '(' && group == 0 && r.groups.size() <= 1) {
      ++i;  // "(555) 123-4567" and "+44 (0) 20 ..."
    } else if (c == ')' && group > 0) {
      r.groups.push_back(group);
      group = 0;
      r.seps.push_back(')');
      ++i;
      if (i < t.size() && t[i] == ' ') ++i;
    } else if (is_sep(c) && group > 0 && i + 1 < t.size() && (is_digit(t[i + 1]) || t[i + 1] == '(')) {
      r.groups.push_back(group);
      group = 0;
      r.seps.push_back(c);
      ++i;
    } else {
      break;
    }
  }
  if (group > 0) r.groups.push_back(group);
  return r;
}

bool luhn_ok(const std::string& d) {
  int sum = 0;
  bool twice = false;
  for (size_t i = d.size(); i-- > 0;) {
    int v = d[i] - '0';
    if (twice) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
    sum += v;
    twice = !twice;
  }
  return sum % 10 == 0;
}

// Issuer prefixes of the major card networks; a Luhn-valid number outside them is not a card.
bool card_prefix_ok(const std::string& d) {
  auto pre = [&](size_t n) { return std::stoi(d.substr(0, n)); };
  size_t len = d.size();
  if (d[0] == '4') return len == 13 || len == 16 || len == 19;                        // Visa
  if ((pre(2) >= 51 && pre(2) <= 55) || (pre(4) >= 2221 && pre(4) <= 2720)) return len == 16;  // Mastercard
  if (pre(2) == 34 || pre(2) == 37) return len == 15;                                 // Amex
  if (pre(4) == 6011 || pre(2) == 65 || (pre(3) >= 644 && pre(3) <= 649)) return len >= 16;  // Discover
  if (pre(2) == 35) return len >= 16;                                                 // JCB
  if (pre(2) == 36 || pre(2) == 38 || (pre(3) >= 300 && pre(3) <= 305)) return len >= 14;  // Diners
  if (pre(2) == 62) return len >= 16;                                                 // UnionPay
  return false;
}

bool uniform_seps(const std::string& seps) {
  return std::all_of(seps.begin(), seps.end(), [&](char c) { return c == seps[0]; });
}

bool is_card(const NumberRun& r) {
  const std::string& d = r.digits;
  if (d.size() < 13 || d.size() > 19) return false;
  if (!r.seps.empty()) {
    // Written in groups of 4 (or Amex 4-6-5), one kind of separator: space or hyphen.
    if (!uniform_seps(r.seps) || (r.seps[0] != ' ' && r.seps[0] != '-')) return false;
    bool fours = std::all_of(r.groups.begin(), r.groups.end() - 1, [](size_t g) { return g == 4; }) &&
                 r.groups.back() >= 1 && r.groups.back() <= 4;
    bool amex = r.groups == std::vector<size_t>{4, 6, 5} || r.groups == std::vector<size_t>{4, 6, 4};
    if (!fours && !amex) return false;
  }
  return card_prefix_ok(d) && luhn_ok(d);
}

// AAA-GG-SSSS with hyphens or spaces; area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
bool is_ssn(const NumberRun& r) {
  if (r.groups != std::vector<size_t>{3, 2, 4} || !uniform_seps(r.seps) || r.seps[0] == '.') return false;
  int area = std::stoi(r.digits.substr(0, 3));
  int group = std::stoi(r.digits.substr(3, 2));
  int serial = std::stoi(r.digits.substr(5, 4));
  return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

// Phone numbers: international (+CC, 8-15 digits), North American (NXX) NXX-XXXX, or a national
// number starting with 0 written in groups (10-11 digits). A bare run of digits is not a phone.
bool is_phone(std::string_view t, const NumberRun& r, bool plus) {
  const size_t n = r.digits.size();
  if (plus) return n >= 8 && n <= 15 && (r.groups.size() >= 2 || n >= 10);
  if (r.groups.size() < 2) return false;
  bool paren = r.seps.find(')') != std::string::npos;
  auto g = r.groups;
  if (!g.empty() && g[0] == 1 && r.digits[0] == '1') g.erase(g.begin());  // "1-800-..."
  if (g == std::vector<size_t>{3, 3, 4}) {
    size_t off = r.digits.size() - 10;
    if (r.digits[off] < '2') return false;  // NANP area codes start with 2-9
    std::string seps = r.seps.substr(r.seps.size() - 2);
    if (paren) return seps[0] == ')' && (seps[1] == '-' || seps[1] == ' ' || seps[1] == '.');
    return seps[0] == seps[1];
  }
  if (r.digits[0] == '0' && (n == 10 || n == 11) && r.groups.size() <= 4 && r.groups[0] >= 2 && r.groups[0] <= 5 &&
      uniform_seps(r.seps) && r.seps[0] != '.') {
    return true;
  }
  return false;
}

void find_numbers(std::string_view t, std::vector<PiiSpan>& out) {
  size_t i = 0;
  while (i < t.size()) {
    bool plus = t[i] == '+' && i + 1 < t.size() && is_digit(t[i + 1]);
    bool start = plus || is_digit(t[i]) || (t[i] == '(' && i + 1 < t.size() && is_digit(t[i + 1]));
    if (!start || !clear_before(t, i)) {
      ++i;
      continue;
    }
    NumberRun r = scan_run(t, plus ? i + 1 : i);
    r.begin = i;
    if (r.digits.empty() || !clear_after(t, r.end)) {
      i = std::max(r.end, i + 1);
      continue;
    }
    if (!plus && is_card(r)) {
      out.push_back({i, r.end, PiiKind::kCard});
    } else if (!plus && is_ssn(r)) {
      out.push_back({i, r.end, PiiKind::kSsn});
    } else if (is_phone(t, r, plus)) {
      out.push_back({i, r.end, PiiKind::kPhone});
    }
    i = std::max(r.end, i + 1);
  }
}

// --- IBAN: CC kk BBAN, mod-97 check, country lengths -----------------------------------------
int iban_length(std::string_view cc) {
  static const std::pair<const char*, int> kLengths[] = {
      {"AD", 24}, {"AT", 20}, {"BE", 16}, {"BG", 22}, {"CH", 21}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
      {"DK", 18}, {"EE", 20}, {"ES", 24}, {"FI", 18}, {"FR", 27}, {"GB", 22}, {"GR", 27}, {"HR", 21},
      {"HU", 28}, {"IE", 22}, {"IS", 26}, {"IT", 27}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21},
      {"MC", 27}, {"MT", 31}, {"NL", 18}, {"NO", 15}, {"PL", 28}, {"PT", 25}, {"RO", 24}, {"SE", 24},
      {"SI", 19}, {"SK", 24}, {"SM", 27}, {"TR", 26}, {"UA", 29}, {"SA", 24}, {"AE", 23}, {"IL", 23},
      {"BR", 29}, {"QA", 29}, {"KW", 30}, {"JO", 30}, {"LB", 28}, {"EG", 29}, {"TN", 24}, {"MU", 30}};
  for (auto& [code, len] : kLengths)
    if (cc == code) return len;
  return 0;
}

bool iban_checksum_ok(const std::string& iban) {
  std::string moved = iban.substr(4) + iban.substr(0, 4);
  int rem = 0;
  for (char c : moved) {
    int v = is_digit(c) ? c - '0' : c - 'A' + 10;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem == 1;
}

void find_ibans(std::string_view t, std::vector<PiiSpan>& out) {
  for (size_t i = 0; i + 4 < t.size(); ++i) {
    if (!is_upper(t[i]) || !is_upper(t[i + 1]) || !is_digit(t[i + 2]) || !is_digit(t[i + 3])) continue;
    if (!clear_before(t, i)) continue;
    int want = iban_length(t.substr(i, 2));
    if (want == 0) continue;
    std::string compact;
    size_t j = i, end = i;
    while (j < t.size() && static_cast<int>(compact.size()) < want) {
      char c = t[j];
      if (is_digit(c) || is_upper(c)) {
        compact.push_back(c);
        end = ++j;
      } else if (c == ' ' && j + 1 < t.size() && is_alnum(t[j + 1]) && compact.size() % 4 == 0) {
        ++j;  // printed IBANs come in groups of four
      } else {
        break;
      }
    }
    if (static_cast<int>(compact.size()) != want || !clear_after(t, end)) continue;
    if (iban_checksum_ok(compact)) {
      out.push_back({i, end, PiiKind::kIban});
      i = end - 1;
    }
  }
}

// --- IP addresses: dotted-quad IPv4 and IPv6 -----------------------------------------------
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool valid_ipv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    size_t len = j - i;
    if (len == 0 || len > 3 || (len > 1 && s[i] == '0')) return false;
    int value = 0;
    for (size_t k = i; k < j; ++k) value = value * 10 + (s[k] - '0');
    if (value > 255) return false;
    ++parts;
    if (j == s.size()) break;
    if (s[j] != '.') return false;
    i = j + 1;
  }
  return parts == 4;
}

void find_ips(std::string_view t, std::vector<PiiSpan>& out) {
  size_t i = 0;
  while (i < t.size()) {
    if (!(is_hex(t[i]) || t[i] == ':') || !clear_before(t, i) || (i > 0 && (is_hex(t[i - 1]) || t[i - 1] == ':'))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < t.size() && (is_hex(t[j]) || t[j] == ':' || t[j] == '.')) ++j;
    size_t e = j;
    while (e > i && (t[e - 1] == '.' || t[e - 1] == ':')) --e;  // trailing punctuation
    std::string_view cand = t.substr(i, e - i);
    bool ok = false;
    if (clear_after(t, e) || (e < t.size() && (t[e] == ':' || t[e] == '/'))) {
      if (cand.find(':') == std::string_view::npos) {
        ok = valid_ipv4(cand);
      } else {
        size_t colons = std::count(cand.begin(), cand.end(), ':');
        bool shape = colons == 7 || (cand.find("::") != std::string_view::npos && colons >= 2);
        unsigned char buf[16];
        ok = shape && inet_pton(AF_INET6, std::string(cand).c_str(), buf) == 1;
        size_t colon = cand.find(':');
        if (!ok && valid_ipv4(cand.substr(0, colon))) {  // "10.0.0.1:8080": an address and a port
          ok = true;
          e = i + colon;
        }
      }
    }
    if (ok) out.push_back({i, e, PiiKind::kIp});
    i = std::max(j, i + 1);
  }
}

}  // namespace

const char* pii_kind_name(PiiKind kind) {
  static const char* names[] = {"email", "phone", "card", "iban", "ssn", "ip"};
  return names[static_cast<int>(kind)];
}

const char* pii_mask(PiiKind kind) {
  static const char* masks[] = {"[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[SSN]", "[IP]"};
  return masks[static_cast<int>(kind)];
}

RedactionMode parse_redaction_mode(std::string_view name) {
  if (name == "off") return RedactionMode::kOff;
  if (name == "mask") return RedactionMode::kMask;
  if (name == "drop") return RedactionMode::kDrop;
  fail(ErrorCode::kInvalidArgument, "redaction mode must be off, mask or drop, got \"" + std::string(name) + "\"");
}

const char* redaction_mode_name(RedactionMode mode) {
  switch (mode) {
    case RedactionMode::kOff: return "off";
    case RedactionMode::kMask: return "mask";
    case RedactionMode::kDrop: return "drop";
  }
  return "?";
}

std::vector<PiiSpan> find_pii(std::string_view text) {
  // Detectors run in priority order; a later finding overlapping an earlier one is discarded
  // (the digits of an IBAN are not also a phone number).
  using Detector = void (*)(std::string_view, std::vector<PiiSpan>&);
  const Detector detectors[] = {find_emails, find_ibans, find_ips, find_numbers};
  std::vector<PiiSpan> kept;  // sorted by begin, non-overlapping, so also sorted by end
  for (Detector detect : detectors) {
    std::vector<PiiSpan> found, accepted;
    detect(text, found);
    for (const PiiSpan& s : found) {
      auto next = std::upper_bound(kept.begin(), kept.end(), s.begin,
                                   [](size_t pos, const PiiSpan& k) { return pos < k.end; });
      bool overlaps = (next != kept.end() && next->begin < s.end) ||
                      (!accepted.empty() && accepted.back().end > s.begin);
      if (!overlaps) accepted.push_back(s);
    }
    std::vector<PiiSpan> merged;
    merged.reserve(kept.size() + accepted.size());
    std::merge(kept.begin(), kept.end(), accepted.begin(), accepted.end(), std::back_inserter(merged),
               [](const PiiSpan& a, const PiiSpan& b) { return a.begin < b.begin; });
    kept.swap(merged);
  }
  std::sort(kept.begin(), kept.end(), [](const PiiSpan& a, const PiiSpan& b) { return a.begin < b.begin; });
  return kept;
}

size_t RedactionCounts::total() const {
  size_t n = 0;
  for (size_t c : found) n += c;
  return n;
}

RedactionCounts& RedactionCounts::operator+=(const RedactionCounts& other) {
  for (size_t k = 0; k < kPiiKinds; ++k) found[k] += other.found[k];
  return *this;
}

Redaction redact(std::string_view text, RedactionMode mode) {
  Redaction r;
  if (mode == RedactionMode::kOff) {
    r.text = std::string(text);
    return r;
  }
  std::vector<PiiSpan> spans = find_pii(text);
  for (const PiiSpan& s : spans) ++r.counts.found[static_cast<size_t>(s.kind)];
  if (mode == RedactionMode::kDrop) {
    r.drop = !spans.empty();
    if (!r.drop) r.text = std::string(text);
    return r;
  }
  size_t at = 0;
  for (const PiiSpan& s : spans) {
    r.text.append(text.substr(at, s.begin - at));
    r.text.append(pii_mask(s.kind));
    at = s.end;
  }
  r.text.append(text.substr(at));
  return r;
}

}  // namespace hearth::privacy
