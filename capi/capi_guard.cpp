#include "capi/capi_guard.h"

#include <c10/util/Exception.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <new>

#include "core/error.h"
#include "storage/utf8.h"

namespace hearth::capi {
namespace {

thread_local std::string tl_last_error;

hearth_status status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return HEARTH_ERR_INVALID_ARGUMENT;
    case ErrorCode::kNotFound: return HEARTH_ERR_NOT_FOUND;
    case ErrorCode::kCorruptFile: return HEARTH_ERR_CORRUPT;
    case ErrorCode::kUnsupported: return HEARTH_ERR_UNSUPPORTED;
    case ErrorCode::kIo: return HEARTH_ERR_IO;
    case ErrorCode::kAuthentication: return HEARTH_ERR_AUTHENTICATION;
    case ErrorCode::kCancelled: return HEARTH_ERR_CANCELLED;
    case ErrorCode::kInternal: return HEARTH_ERR_INTERNAL;
  }
  return HEARTH_ERR_INTERNAL;
}

// Handles are numbers, never addresses: nothing is dereferenced, so a stale handle is just an
// unknown number.
std::mutex g_mutex;
std::map<uintptr_t, std::shared_ptr<engine::Engine>> g_engines;
uintptr_t g_next_handle = 1;

}  // namespace

extern "C" const char* hearth_last_error(void) { return tl_last_error.c_str(); }

hearth_status refuse(hearth_status status, const std::string& message) {
  tl_last_error = message;
  return status;
}

hearth_status guarded(const std::function<void()>& body) {
  try {
    body();
    tl_last_error.clear();
    return HEARTH_OK;
  } catch (const Error& e) {
    return refuse(status_of(e.code()), e.what());
  } catch (const c10::Error& e) {
    return refuse(HEARTH_ERR_INTERNAL, std::string("internal tensor error: ") + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return refuse(HEARTH_ERR_IO, "out of memory; close other apps or lower the job's memory ceiling");
  } catch (const std::exception& e) {
    return refuse(HEARTH_ERR_INTERNAL, e.what());
  } catch (...) {
    return refuse(HEARTH_ERR_INTERNAL, "unknown error");
  }
}

hearth_engine* register_engine(std::unique_ptr<engine::Engine> engine) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const uintptr_t id = g_next_handle++;
  g_engines[id] = std::shared_ptr<engine::Engine>(std::move(engine));
  return reinterpret_cast<hearth_engine*>(id);
}

std::shared_ptr<engine::Engine> engine_of(hearth_engine* handle) {
  require(handle != nullptr, ErrorCode::kInvalidArgument, "the engine handle is NULL; open one with hearth_open");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_engines.find(reinterpret_cast<uintptr_t>(handle));
  require(it != g_engines.end(), ErrorCode::kInvalidArgument,
          "the engine handle is closed or was never opened; open one with hearth_open");
  return it->second;
}

void close_handle(hearth_engine* handle) {
  std::shared_ptr<engine::Engine> last;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_engines.find(reinterpret_cast<uintptr_t>(handle));
  require(handle != nullptr && it != g_engines.end(), ErrorCode::kInvalidArgument,
          "the engine handle is closed or was never opened");
  last = std::move(it->second);
  g_engines.erase(it);
}

std::string text_arg(const char* s, const char* what) {
  require(s != nullptr, ErrorCode::kInvalidArgument, std::string(what) + " is NULL");
  std::string text(s);
  const size_t bad = storage::first_invalid_utf8(text);
  require(bad == std::string::npos, ErrorCode::kInvalidArgument,
          std::string(what) + " is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  return text;
}

}  // namespace hearth::capi
