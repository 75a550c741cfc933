// UTF-8 validation and NFC normalization: known cases from the Unicode standard, and the
// trivial fast path against the full algorithm.
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "inference/tokenizer/unicode_nfc.h"
#include "inference/tokenizer/utf8.h"

namespace hearth::tokenizer {
namespace {

std::string error_of(std::string_view text) {
  try {
    require_valid_utf8(text, "text");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_EQ(error_of(""), "");
  EXPECT_EQ(error_of("plain ascii that is longer than eight bytes"), "");
  EXPECT_EQ(error_of("caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x99\x82 \xF4\x8F\xBF\xBF"), "");
}

TEST(Utf8, RejectsMalformedSequencesNamingTheByte) {
  EXPECT_EQ(error_of("abc\x80"), "text: invalid UTF-8 at byte 3");           // stray continuation
  EXPECT_EQ(error_of("ab\xC0\xAF"), "text: invalid UTF-8 at byte 2");        // overlong '/'
  EXPECT_EQ(error_of("\xED\xA0\x80"), "text: invalid UTF-8 at byte 0");      // surrogate U+D800
  EXPECT_EQ(error_of("x\xF4\x90\x80\x80"), "text: invalid UTF-8 at byte 1"); // past U+10FFFF
  EXPECT_EQ(error_of("0123456789\xE4\xB8"), "text: invalid UTF-8 at byte 10"); // truncated at the end
}

TEST(Utf8, TrimsJavaScriptWhitespace) {
  EXPECT_EQ(trim_whitespace(" \t\xC2\xA0hi there\xE3\x80\x80\n", true, true), "hi there");
  EXPECT_EQ(trim_whitespace("  x  ", false, true), "  x");
  EXPECT_EQ(trim_whitespace("   ", true, true), "");
}

TEST(Nfc, ComposesDecomposesAndReorders) {
  EXPECT_EQ(normalize_nfc("e\xCC\x81"), "\xC3\xA9");                       // e + acute -> é
  EXPECT_EQ(normalize_nfc("\xE2\x84\xAB"), "\xC3\x85");                    // Angstrom sign -> Å (singleton)
  EXPECT_EQ(normalize_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // Hangul L V T -> 각
  // q + dot below + dot above: already in canonical order, nothing composes with q.
  EXPECT_EQ(normalize_nfc("q\xCC\x87\xCC\xA3"), "q\xCC\xA3\xCC\x87");
  // s + dot above + dot below -> U+1E69 (ṩ) after reordering.
  EXPECT_EQ(normalize_nfc("s\xCC\x87\xCC\xA3"), "\xE1\xB9\xA9");
  // U+0958 is a composition exclusion: it decomposes and stays decomposed.
  EXPECT_EQ(normalize_nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");
  EXPECT_EQ(normalize_nfc("\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x99\x82"), "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x99\x82");
}

// Random text below U+0300 takes the fast path; the same text with a CJK character appended
// takes the full algorithm, which must leave the prefix alone.
TEST(Nfc, FastPathAgreesWithFullAlgorithm) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int i = 0; i < 50; ++i) append_utf8(static_cast<char32_t>(1 + rng() % 0x2FF), text);
    const std::string suffix = "\xE4\xB8\xAD";
    EXPECT_EQ(normalize_nfc(text), text);
    EXPECT_EQ(normalize_nfc(text + suffix), text + suffix);
  }
}

}  // namespace
}  // namespace hearth::tokenizer
