// Range checks and JSON fields: a value outside its range, NaN, an infinity, a float where an
// integer belongs (5.5 is not 5) or an integer too large for its type is refused with one
// message naming the option or field, the value and the allowed range.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/json.h"
#include "core/range_check.h"

namespace hearth {
namespace {

std::string message_of(const std::function<void()>& f, ErrorCode expected) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), expected) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(RangeCheck, IntegersInsideAreAcceptedAndOutsideNamed) {
  EXPECT_NO_THROW(require_integer_in_range("--steps", 1, 1, 10));
  EXPECT_NO_THROW(require_integer_in_range("--steps", 10, 1, 10));
  const std::string m = message_of([] { require_integer_in_range("--steps", 11, 1, 10); }, ErrorCode::kInvalidArgument);
  EXPECT_EQ(m, "--steps must be an integer in 1..10, got 11");
  EXPECT_TRUE(contains(message_of([] { require_integer_in_range("--steps", -5, 1, 10); }, ErrorCode::kInvalidArgument),
                       "got -5"));
}

TEST(RangeCheck, NumbersRefuseNanInfinitiesAndOpenEnds) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_NO_THROW(require_number_in_range("--lr", 1e-4, 0, 1, Bound::kOpen));
  EXPECT_NO_THROW(require_number_in_range("--lr", 1, 0, 1, Bound::kOpen));
  EXPECT_EQ(message_of([&] { require_number_in_range("--lr", inf, 0, 1, Bound::kOpen); }, ErrorCode::kInvalidArgument),
            "--lr must be a finite number in (0, 1], got inf");
  EXPECT_TRUE(contains(message_of([] { require_number_in_range("--lr", std::nan(""), 0, 1); }, ErrorCode::kInvalidArgument),
                       "got nan"));
  EXPECT_TRUE(contains(message_of([] { require_number_in_range("--lr", 0, 0, 1, Bound::kOpen); }, ErrorCode::kInvalidArgument),
                       "(0, 1]"));
  EXPECT_TRUE(contains(message_of([] { require_number_in_range("p", 1, 0, 1, Bound::kClosed, Bound::kOpen); },
                                  ErrorCode::kInvalidArgument),
                       "[0, 1)"));
  EXPECT_TRUE(contains(message_of([] { require_number_in_range("alpha", 1e38, 0, 1e4, Bound::kOpen); },
                                  ErrorCode::kInvalidArgument),
                       "got 1e+38"));
}

TEST(StrictJson, IntegerFieldsTakeOnlyIntegersThatFit) {
  const Json j = parse_json(R"({"a": 5, "b": 5.5, "c": "5", "d": 18446744073709551615, "e": -1, "f": 5.0})", "test.json");
  EXPECT_EQ(json_get<int64_t>(j, "a", "test.json"), 5);
  EXPECT_TRUE(contains(message_of([&] { json_get<int64_t>(j, "b", "test.json"); }, ErrorCode::kCorruptFile), "got 5.5"));
  EXPECT_TRUE(contains(message_of([&] { json_get<int64_t>(j, "c", "test.json"); }, ErrorCode::kCorruptFile), "got \"5\""));
  EXPECT_TRUE(contains(message_of([&] { json_get<int64_t>(j, "d", "test.json"); }, ErrorCode::kCorruptFile),
                       "got 18446744073709551615"));
  EXPECT_EQ(json_get<uint64_t>(j, "d", "test.json"), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(contains(message_of([&] { json_get<uint64_t>(j, "e", "test.json"); }, ErrorCode::kCorruptFile), "got -1"));
  EXPECT_TRUE(contains(message_of([&] { json_get<int32_t>(j, "d", "test.json"); }, ErrorCode::kCorruptFile), "test.json"));
  // A JSON float is not an integer, even with nothing after the point.
  EXPECT_THROW(json_get<int64_t>(j, "f", "test.json"), Error);
  EXPECT_EQ(json_get<double>(j, "a", "test.json"), 5.0);
  EXPECT_THROW(json_get<double>(j, "c", "test.json"), Error);
}

TEST(StrictJson, RangedFieldsNameFieldValueAndRange) {
  const Json j = parse_json(R"({"layers": 5.5, "big": 99999999999, "eps": 5, "ok": 3, "name": "x"})", "config.json");
  EXPECT_EQ(message_of([&] { json_get_integer_in_range(j, "layers", 1, 1024, "config.json"); }, ErrorCode::kCorruptFile),
            "config.json: field \"layers\" must be a whole number, got 5.5");
  EXPECT_EQ(message_of([&] { json_get_integer_in_range(j, "big", 1, 1024, "config.json"); }, ErrorCode::kCorruptFile),
            "config.json: \"big\" must be an integer in 1..1024, got 99999999999");
  EXPECT_EQ(message_of([&] { json_get_number_in_range(j, "eps", 0, 0.1, "config.json"); }, ErrorCode::kCorruptFile),
            "config.json: \"eps\" must be a finite number in [0, 0.1], got 5");
  EXPECT_TRUE(contains(message_of([&] { json_get_number_in_range(j, "name", 0, 1, "config.json"); }, ErrorCode::kCorruptFile),
                       "got \"x\""));
  EXPECT_TRUE(contains(message_of([&] { json_get_integer_in_range(j, "missing", 0, 1, "config.json"); }, ErrorCode::kCorruptFile),
                       "missing field \"missing\""));
  EXPECT_EQ(json_get_integer_in_range(j, "ok", 1, 3, "config.json"), 3);
}

}  // namespace
}  // namespace hearth
