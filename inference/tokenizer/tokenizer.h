// The tokenizer interface every model uses (text <-> token ids, stop tokens, chat template),
// and load_tokenizer, which picks the implementation from the files it is given.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "inference/tokenizer/chat_template.h"

namespace hearth {

class Tokenizer {
 public:
  virtual ~Tokenizer();

  // Token ids of `text` (valid UTF-8, else kInvalidArgument naming the byte), with the BOS token
  // first when add_bos is set and the tokenizer has one. Special tokens written in the text
  // (e.g. "<|im_start|>") become their ids.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // The exact bytes the ids stand for (special tokens as their text).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The bytes of one token, for streaming: may be part of a UTF-8 sequence, so a streaming
  // caller buffers bytes until they form whole characters.
  virtual std::string decode_token(int32_t id) const = 0;
  // The bytes `id` adds to text that ends with token `previous` (-1 at the start): what a
  // streaming caller emits. Differs from decode_token where a tokenizer's decoding depends on
  // context (llama2.c drops the dummy-prefix space after BOS).
  virtual std::string decode_next(int32_t previous, int32_t id) const { return decode_token(id); }

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const;  // -1 if none
  virtual int32_t eos_id() const;  // -1 if none
  // EOS plus the chat end-of-turn tokens the vocabulary has (<|eot_id|>, <|im_end|>, ...).
  virtual std::vector<int32_t> stop_ids() const;
  // The chat template from tokenizer_config.json, or nullptr.
  virtual const ChatTemplate* chat_template() const;
};

// Loads a tokenizer from a tokenizer.json (tokenizer_config.json beside it supplies BOS, EOS and
// the chat template), a llama2.c tokenizer .bin file, or a folder holding tokenizer.json, or
// else tokenizer.bin or tok<N>.bin. Throws kNotFound / kCorruptFile / kUnsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace hearth
