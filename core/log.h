// Logging set-up: one stderr logger shared by every module, so stdout stays free for
// generated text and --json results.
#pragma once
#include <spdlog/spdlog.h>

namespace hearth {

// Routes spdlog's default logger to stderr; `verbose` enables debug messages.
void init_logging(bool verbose);

}  // namespace hearth
