#include "fuzz/harness.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

#include "core/runtime.h"

namespace hearth::fuzz {

void init() {
  init_runtime(1);
  spdlog::set_level(spdlog::level::off);
}

void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::abort();
}

}  // namespace hearth::fuzz
