// One tokenized training document: its token ids and which of them the loss is computed on
// (assistant turns of a chat, the completion of a prompt/completion pair, all of a text).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hearth::trainer {

struct TokenDocument {
  std::vector<int32_t> tokens;
  // trained[i]: token i is a prediction target (predicted from tokens[0..i)). trained[0] is
  // never used: nothing predicts the first token.
  std::vector<uint8_t> trained;
  std::string source;  // "file:line" or "file", for messages
};

// Tokens the loss is computed on: trained[i] set for i >= 1.
int64_t trained_token_count(const TokenDocument& doc);

}  // namespace hearth::trainer
