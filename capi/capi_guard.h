// What every C API call shares: the thread-local last error, the translation of C++ errors into
// status codes (no exception crosses the boundary), and the registry of open engines, so a
// closed or made-up handle is an error code instead of a dangling pointer.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "capi/hearth.h"
#include "engine/engine.h"

namespace hearth::capi {

// Runs `body` and returns HEARTH_OK, or the status of what it threw with the message kept for
// hearth_last_error().
hearth_status guarded(const std::function<void()>& body);

// Sets the last error to `message` and returns `status` (for checks done before any work).
hearth_status refuse(hearth_status status, const std::string& message);

// A new handle for `engine`; the registry owns it until close_handle().
hearth_engine* register_engine(std::unique_ptr<engine::Engine> engine);
// The engine behind `handle` (kept alive for the caller even if another thread closes it);
// kInvalidArgument for NULL, closed or unknown handles.
std::shared_ptr<engine::Engine> engine_of(hearth_engine* handle);
// Removes the handle; kInvalidArgument if it is not open.
void close_handle(hearth_engine* handle);

// A required string argument: kInvalidArgument naming `what` for NULL or invalid UTF-8.
std::string text_arg(const char* s, const char* what);

}  // namespace hearth::capi
