// The byte-level BPE tokenizer of Hugging Face tokenizer.json files (Llama 3, Qwen, SmolLM2):
// added tokens, NFC normalizer, regex pre-tokenizer, byte-level alphabet, BPE merges.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "inference/tokenizer/added_tokens.h"
#include "inference/tokenizer/bpe_model.h"
#include "inference/tokenizer/regex_splitter.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

class BpeTokenizer : public Tokenizer {
 public:
  // `tokenizer_json` is a parsed tokenizer.json, `config` a parsed tokenizer_config.json (or
  // null: then there is no BOS, no chat template, and EOS is guessed from the special tokens).
  // `what` names the file in errors. Throws kCorruptFile / kUnsupported.
  BpeTokenizer(const Json& tokenizer_json, const Json& config, const std::string& what);

  // Reads tokenizer.json and the tokenizer_config.json beside it, if there is one.
  static std::unique_ptr<BpeTokenizer> load(const std::filesystem::path& tokenizer_json);

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string decode_token(int32_t id) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  std::vector<int32_t> stop_ids() const override;
  const ChatTemplate* chat_template() const override { return chat_template_ ? &*chat_template_ : nullptr; }

  // The id of an added token or vocabulary entry given by its text, or -1.
  int32_t token_id(std::string_view text) const;

 private:
  void read_normalizer(const Json& normalizer, const std::string& what);
  void read_pre_tokenizer(const Json& pre_tokenizer, const std::string& what);
  void read_model(const Json& model, size_t added_tokens, const std::string& what);
  void read_added_tokens(const Json& added_tokens, const std::string& what);
  void read_config(const Json& config, const std::string& what);
  // Normalizes, splits and merges one stretch of text that holds no added token.
  void encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const;

  bool nfc_ = false;
  std::vector<std::unique_ptr<tokenizer::RegexSplitter>> splitters_;  // applied in order
  bool add_prefix_space_ = false;
  std::unique_ptr<tokenizer::BpeModel> model_;
  tokenizer::AddedTokenMatcher added_;
  std::unordered_map<int32_t, std::string> added_content_;  // by id
  int32_t vocab_size_ = 0;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  std::optional<ChatTemplate> chat_template_;
};

}  // namespace hearth
