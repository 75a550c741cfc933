// The redaction table: at least 40 kinds of real PII that must be found and 40 look-alikes
// (numbers, dates, prices, times, ISBNs, versions, bad checksums) that must not.
#include <gtest/gtest.h>

#include "core/error.h"
#include "privacy/redactor.h"

using namespace hearth;
using namespace hearth::privacy;

namespace {

struct Positive {
  const char* text;
  const char* token;  // the exact bytes that must be found
  PiiKind kind;
};

const Positive kPositives[] = {
    {"write to alice.smith@example.com today", "alice.smith@example.com", PiiKind::kEmail},
    {"Contact: bob+news@mail.co.uk.", "bob+news@mail.co.uk", PiiKind::kEmail},
    {"<j_doe-99@sub.domain.org>", "j_doe-99@sub.domain.org", PiiKind::kEmail},
    {"email X.Y@Z.IO please", "X.Y@Z.IO", PiiKind::kEmail},
    {"(first.last%tag@uni-bonn.de)", "first.last%tag@uni-bonn.de", PiiKind::kEmail},
    {"mail me at a1@b2.travel, thanks", "a1@b2.travel", PiiKind::kEmail},
    {"call (555) 123-4567 now", "(555) 123-4567", PiiKind::kPhone},
    {"phone 555-123-4567.", "555-123-4567", PiiKind::kPhone},
    {"tel 212.555.0199 ext", "212.555.0199", PiiKind::kPhone},
    {"toll free 1-800-555-0100", "1-800-555-0100", PiiKind::kPhone},
    {"ring +1 415 555 2671 tonight", "+1 415 555 2671", PiiKind::kPhone},
    {"UK office +44 20 7946 0958", "+44 20 7946 0958", PiiKind::kPhone},
    {"Berlin +49 (0)30 1234567", "+49 (0)30 1234567", PiiKind::kPhone},
    {"mobile +33612345678", "+33612345678", PiiKind::kPhone},
    {"national 020 7946 0958 line", "020 7946 0958", PiiKind::kPhone},
    {"Tokyo 03-1234-5678 desk", "03-1234-5678", PiiKind::kPhone},
    {"cell: 0612 345 678", "0612 345 678", PiiKind::kPhone},
    {"card 4111 1111 1111 1111 exp", "4111 1111 1111 1111", PiiKind::kCard},
    {"visa 4012888888881881", "4012888888881881", PiiKind::kCard},
    {"mc 5555-5555-5555-4444.", "5555-5555-5555-4444", PiiKind::kCard},
    {"mc2 5105 1051 0510 5100", "5105 1051 0510 5100", PiiKind::kCard},
    {"amex 3782 822463 10005 ok", "3782 822463 10005", PiiKind::kCard},
    {"amex 371449635398431", "371449635398431", PiiKind::kCard},
    {"discover 6011 1111 1111 1117", "6011 1111 1111 1117", PiiKind::kCard},
    {"jcb 3530111333300000", "3530111333300000", PiiKind::kCard},
    {"diners 30569309025904", "30569309025904", PiiKind::kCard},
    {"mastercard 2223003122003222", "2223003122003222", PiiKind::kCard},
    {"iban DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00", PiiKind::kIban},
    {"IBAN: DE89370400440532013000", "DE89370400440532013000", PiiKind::kIban},
    {"to GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32", PiiKind::kIban},
    {"FR1420041010050500013M02606", "FR1420041010050500013M02606", PiiKind::kIban},
    {"acct NL91ABNA0417164300 bank", "NL91ABNA0417164300", PiiKind::kIban},
    {"BE68 5390 0754 7034", "BE68 5390 0754 7034", PiiKind::kIban},
    {"CH9300762011623852957", "CH9300762011623852957", PiiKind::kIban},
    {"ES9121000418450200051332 pay", "ES9121000418450200051332", PiiKind::kIban},
    {"ssn 123-45-6789 on file", "123-45-6789", PiiKind::kSsn},
    {"SSN: 078 05 1120", "078 05 1120", PiiKind::kSsn},
    {"social 219-09-9999.", "219-09-9999", PiiKind::kSsn},
    {"server 192.168.1.10 is down", "192.168.1.10", PiiKind::kIp},
    {"from 8.8.8.8, then", "8.8.8.8", PiiKind::kIp},
    {"ip=255.255.255.255", "255.255.255.255", PiiKind::kIp},
    {"connect to 10.0.0.1:8080", "10.0.0.1", PiiKind::kIp},
    {"v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 addr", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", PiiKind::kIp},
    {"short fe80::1ff:fe23:4567:890a here", "fe80::1ff:fe23:4567:890a", PiiKind::kIp},
    {"doc 2001:db8::1.", "2001:db8::1", PiiKind::kIp},
};

const char* const kNegatives[] = {
    "The answer is 42 and 1234567 people agree.",
    "Population 8000000000 in 2023.",
    "Meet on 2024-01-15 at 10:30.",
    "Dated 15/01/2024 and 01.02.2023.",
    "It costs $1,299.99 or EUR 49.50.",
    "Price: 1 234 567,89 kr",
    "The train leaves at 12:30:45 sharp.",
    "Times 09:15, 23:59 and 7:05pm.",
    "ISBN 978-3-16-148410-0 is a book.",
    "ISBN 9783161484100 again.",
    "version 1.2.3 released",
    "upgrade to v2.10.4-rc1",
    "Windows 10.0.19041.1 build",
    "card 4111 1111 1111 1112 fails Luhn",
    "number 1234 5678 9012 3456 has no issuer",
    "account 4111111111111112 bad check",
    "amex 3782 822463 10006 bad",
    "iban DE89 3704 0044 0532 0130 01 bad checksum",
    "GB83 WEST 1234 5698 7654 32 wrong",
    "XX89370400440532013000 unknown country",
    "order number 123-456-7890A",
    "SSN 000-12-3456 is never issued",
    "SSN 666-12-3456 is never issued",
    "SSN 900-12-3456 is never issued",
    "code 123-00-4567 has group zero",
    "pi is 3.14159265358979",
    "coordinates 48.8566, 2.3522",
    "ratio 1:2:3 mixed",
    "MAC 00:1A:2B:3C:4D:5E of the card",
    "address 999.1.1.1 is not valid",
    "also 1.2.3.04 has a leading zero",
    "Chapter 3.2.1 explains",
    "user@ alone, @handle and a@b",
    "retina asset icon@2x and @3x",
    "phone-like 123-4567 is too short",
    "area 155-123-4567 cannot start with 1",
    "serial ABC1234567890XYZ",
    "hash 9f86d081884c7d659a2f",
    "year range 1990-2020 and 2021-2024",
    "call extension 4567 or room 1234",
    "lottery 12 34 56 78 90 11",
    "UUID 123e4567-e89b-12d3-a456-426614174000",
};

std::string joined_kinds(const std::vector<PiiSpan>& spans) {
  std::string s;
  for (auto& sp : spans) s += std::string(pii_kind_name(sp.kind)) + " ";
  return s;
}

}  // namespace

TEST(Redactor, TableHasEnoughCases) {
  EXPECT_GE(std::size(kPositives), 40u);
  EXPECT_GE(std::size(kNegatives), 40u);
}

TEST(Redactor, FindsEveryPositive) {
  for (const Positive& p : kPositives) {
    std::string text = p.text;
    auto spans = find_pii(text);
    ASSERT_EQ(spans.size(), 1u) << p.text << " -> " << joined_kinds(spans);
    EXPECT_EQ(spans[0].kind, p.kind) << p.text << " -> " << joined_kinds(spans);
    EXPECT_EQ(text.substr(spans[0].begin, spans[0].end - spans[0].begin), p.token) << p.text;
  }
}

TEST(Redactor, NoFalseAlarmOnLookAlikes) {
  for (const char* n : kNegatives) {
    auto spans = find_pii(n);
    EXPECT_TRUE(spans.empty()) << n << " -> " << joined_kinds(spans)
                               << (spans.empty() ? "" : std::string(n).substr(spans[0].begin, spans[0].end - spans[0].begin));
  }
}

TEST(Redactor, MaskReplacesAndCounts) {
  Redaction r = redact("Mail a@b.com or call 555-123-4567; card 4111 1111 1111 1111.", RedactionMode::kMask);
  EXPECT_EQ(r.text, "Mail [EMAIL] or call [PHONE]; card [CARD].");
  EXPECT_EQ(r.counts.total(), 3u);
  EXPECT_EQ(r.counts.found[static_cast<size_t>(PiiKind::kPhone)], 1u);
  EXPECT_FALSE(r.drop);
}

TEST(Redactor, DropAndOffModes) {
  Redaction dropped = redact("ip 10.1.2.3", RedactionMode::kDrop);
  EXPECT_TRUE(dropped.drop);
  EXPECT_EQ(dropped.counts.total(), 1u);
  Redaction kept = redact("nothing here at 10:30", RedactionMode::kDrop);
  EXPECT_FALSE(kept.drop);
  EXPECT_EQ(kept.text, "nothing here at 10:30");
  Redaction off = redact("ip 10.1.2.3", RedactionMode::kOff);
  EXPECT_EQ(off.text, "ip 10.1.2.3");
  EXPECT_EQ(off.counts.total(), 0u);
}

TEST(Redactor, ParsesModes) {
  EXPECT_EQ(parse_redaction_mode("mask"), RedactionMode::kMask);
  EXPECT_EQ(parse_redaction_mode("drop"), RedactionMode::kDrop);
  EXPECT_EQ(parse_redaction_mode("off"), RedactionMode::kOff);
  EXPECT_THROW(parse_redaction_mode("MASK!"), Error);
}

TEST(Redactor, LongTextIsLinear) {
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "word 12:30 1.2.3 $4.99 a@b.cd ";
  auto spans = find_pii(big);
  EXPECT_EQ(spans.size(), 20000u);
}
