// Splits one fuzz input into the files of a multi-file format (config.json and weights, an
// adapter's three files) at a separator line, so mutations keep each file's bytes apart.
#pragma once
#include <string.h>

#include <string_view>
#include <vector>

namespace hearth::fuzz {

// The separator the seed writer puts between files.
inline constexpr std::string_view kPartSeparator = "\n--hearth-fuzz-part--\n";

// At most `max_parts` parts; the last one keeps any further separators. memmem (not
// string_view::find) lets libFuzzer see the separator comparisons and learn the token.
inline std::vector<std::string_view> split_parts(std::string_view input, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const void* hit = memmem(input.data(), input.size(), kPartSeparator.data(), kPartSeparator.size());
    if (hit == nullptr) break;
    const size_t at = static_cast<const char*>(hit) - input.data();
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kPartSeparator.size());
  }
  parts.push_back(input);
  return parts;
}

}  // namespace hearth::fuzz
