// The JSON-lines protocol of `hearth serve`: one JSON object per line in, one per line out.
// Hearth's own request shape and an OpenAI-style chat-completions shape (messages, max_tokens,
// temperature, stream, plus adapter / user) are both accepted; replies come in the request's shape.
//
//   {"id": "a1", "prompt": "Once upon", "user": "ann", "adapter": "default", "max_tokens": 32,
//    "temperature": 0, "stream": true}
//   -> {"id": "a1", "event": "token", "text": " a"} ... {"id": "a1", "event": "done", "text": ..., ...}
//   {"cancel": "a1"}
//   {"op": "load_adapter" | "unload_adapter" | "scale_adapter" | "adapters", ...}
//   {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16, "stream": true, "adapter": ...}
//   -> {"object": "chat.completion.chunk", "choices": [{"delta": {"content": ...}}], ...} lines
//
// Test-time training per request: "ttt": {"steps": 8, "lr": ..., "rank": ..., "chunk": ...,
// "keep": false}, with "context": the text to learn from (and "keep_as": a name when kept).
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "engine/server.h"

namespace hearth::engine {

struct ServeCommand {
  enum class Kind { kGenerate, kCancel, kLoadAdapter, kUnloadAdapter, kScaleAdapter, kListAdapters };
  Kind kind = Kind::kGenerate;
  std::string id;        // the client's id for the request, echoed in every reply
  bool openai = false;   // the chat-completions shape: replies in that shape
  bool stream = true;    // token replies as they come (else only the final one)
  ServeRequest request;  // kGenerate
  std::string user, adapter, key;  // adapter commands
  int64_t version = 0;
  double scale = 1.0;
};

// Parses one line. kInvalidArgument naming the problem for malformed JSON, unknown fields,
// wrong types or values out of range. `fallback_id` names a request that gave no id.
ServeCommand parse_serve_command(std::string_view line, const std::string& fallback_id);

// The id a reply to `line` should carry when parsing failed (null when none can be read).
Json reply_id_of(std::string_view line);

// Replies, each one JSON object for one line.
Json text_reply(const ServeCommand& c, std::string_view text, const std::string& model);
Json done_reply(const ServeCommand& c, const GenerationResult& r, const std::optional<TttReport>& ttt,
                const std::string& model);
Json error_reply(const Json& id, bool openai, const std::string& message);
Json ok_reply(const ServeCommand& c, Json fields);

}  // namespace hearth::engine
