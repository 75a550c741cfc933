// Texts every tokenizer target encodes once a fuzzed vocabulary has loaded: ASCII, accents in
// both normal forms, CJK, emoji, whitespace runs, chat special tokens and digits.
#pragma once
#include <array>
#include <string_view>

namespace hearth::fuzz {

inline constexpr std::array<std::string_view, 8> kSampleTexts = {
    "Hello, world! It's 2024.",
    "caf\xc3\xa9 cafe\xcc\x81 na\xc3\xafve",
    "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c",
    "\xf0\x9f\x98\x80 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "  \t\n\n   spaces   \r\n",
    "<|im_start|>user\nhi<|im_end|><|eot_id|><s></s>",
    "1234567890 3.14159 -42",
    "",
};

}  // namespace hearth::fuzz
