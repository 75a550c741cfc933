#include "trainer/chat_tokenize.h"

#include "core/error.h"

namespace hearth::trainer {
namespace {

bool inside_any(size_t byte, const std::vector<std::pair<size_t, size_t>>& spans) {
  for (const auto& [begin, end] : spans) {
    if (byte >= begin && byte < end) return true;
  }
  return false;
}

// The text cut at every span boundary, each piece flagged with whether it lies in a span.
std::vector<std::pair<std::string, bool>> split_at_spans(const std::string& text,
                                                         const std::vector<std::pair<size_t, size_t>>& spans) {
  std::vector<std::pair<std::string, bool>> pieces;
  size_t at = 0;
  for (const auto& [begin, end] : spans) {
    if (begin > at) pieces.emplace_back(text.substr(at, begin - at), false);
    pieces.emplace_back(text.substr(begin, end - begin), true);
    at = end;
  }
  if (at < text.size()) pieces.emplace_back(text.substr(at), false);
  return pieces;
}

TokenDocument tokenize_pieces(const Tokenizer& tokenizer, const std::vector<std::pair<std::string, bool>>& pieces,
                              bool add_bos) {
  TokenDocument doc;
  bool first = true;
  for (const auto& [text, trained] : pieces) {
    if (text.empty()) continue;
    std::vector<int32_t> ids = tokenizer.encode(text, add_bos && first);
    const bool starts_with_bos = add_bos && first && !ids.empty() && ids.front() == tokenizer.bos_id();
    for (size_t i = 0; i < ids.size(); ++i) {
      doc.tokens.push_back(ids[i]);
      doc.trained.push_back(trained && !(starts_with_bos && i == 0));
    }
    first = false;
  }
  return doc;
}

}  // namespace

TokenDocument tokenize_with_spans(const Tokenizer& tokenizer, const std::string& text,
                                  const std::vector<std::pair<size_t, size_t>>& spans, bool add_bos) {
  std::vector<int32_t> ids = tokenizer.encode(text, add_bos);
  // Byte offset of every token in the decoded text; exact when decoding gives the text back.
  std::string decoded;
  std::vector<size_t> starts;
  int32_t previous = -1;
  for (int32_t id : ids) {
    starts.push_back(decoded.size());
    decoded += tokenizer.decode_next(previous, id);
    previous = id;
  }
  if (decoded != text) return tokenize_pieces(tokenizer, split_at_spans(text, spans), add_bos);
  TokenDocument doc;
  doc.tokens = std::move(ids);
  doc.trained.resize(doc.tokens.size());
  for (size_t i = 0; i < doc.tokens.size(); ++i) {
    const bool bos = add_bos && i == 0 && doc.tokens[0] == tokenizer.bos_id();
    doc.trained[i] = !bos && inside_any(starts[i], spans);
  }
  return doc;
}

TokenDocument tokenize_chat(const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                            const std::vector<ChatMessage>& messages) {
  require(!messages.empty(), ErrorCode::kInvalidArgument, "a chat example has no messages");
  RenderedChat chat = chat_template.render_with_spans(messages, /*add_generation_prompt=*/false);
  require(!chat.assistant_spans.empty(), ErrorCode::kInvalidArgument,
          "a chat example has no assistant message, so there is nothing to train on");
  // The template writes any BOS itself (Llama 3); the text is encoded whole, as at inference.
  return tokenize_with_spans(tokenizer, chat.text, chat.assistant_spans, /*add_bos=*/false);
}

}  // namespace hearth::trainer
