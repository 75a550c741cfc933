// UTF-8 validation for everything Hearth ingests: overlong forms, surrogates and code points
// past U+10FFFF are invalid, as in RFC 3629.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace hearth::storage {

// The offset of the first byte that breaks UTF-8, or std::string::npos when `text` is valid.
size_t first_invalid_utf8(std::string_view text);

}  // namespace hearth::storage
