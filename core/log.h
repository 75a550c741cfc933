// Logging set-up: one stderr logger shared by every module, so stdout stays free for
// generated text and --json results.
#pragma once
#include <spdlog/spdlog.h>

namespace hearth {

// Routes spdlog's default logger to stderr; `verbose` enables debug messages. LibTorch's own
// log (glog) keeps only fatal messages unless `verbose`: c10d logs a lost peer or an unreachable
// rendezvous there before throwing, and the exception already becomes the one `error:` line.
void init_logging(bool verbose);

}  // namespace hearth
