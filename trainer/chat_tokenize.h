// Tokenizes a chat conversation with the model's chat template and marks the tokens of the
// assistant's turns (ChatTemplate::render_with_spans byte spans mapped onto tokens).
#pragma once
#include <vector>

#include "inference/tokenizer/tokenizer.h"
#include "trainer/token_document.h"

namespace hearth::trainer {

// The rendered conversation as tokens (BOS first when the tokenizer has one and the template
// does not write it), with trained[i] set exactly for the tokens whose first byte lies inside
// an assistant span.
TokenDocument tokenize_chat(const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                            const std::vector<ChatMessage>& messages);

// `text` encoded whole (BOS first when add_bos), with trained[i] set exactly for the tokens
// whose first byte lies inside one of `spans` ([begin, end) byte ranges). Token offsets come
// from decoding the ids one after another; a tokenizer that does not decode back to the exact
// text gets the text encoded piece by piece instead, cut at the span boundaries.
TokenDocument tokenize_with_spans(const Tokenizer& tokenizer, const std::string& text,
                                  const std::vector<std::pair<size_t, size_t>>& spans, bool add_bos);

}  // namespace hearth::trainer
