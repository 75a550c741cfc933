#include "inference/tokenizer/synthetic_tokenizer.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "inference/tokenizer/byte_level.h"

namespace hearth {
namespace {

// The Llama 3 split pattern, written into the file (the loader reads patterns from the file).
const char* const kSplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Merge material, most frequent first: appending these to existing tokens gives word-like pieces.
const char* const kAlphabet = "etaoinshrdlucmfwypvbgkjqxz";

std::vector<std::string> special_tokens(ChatFamily family) {
  require(family != ChatFamily::kGemma, ErrorCode::kInvalidArgument, "synthetic tokenizers are ChatML or Llama 3 only");
  if (family == ChatFamily::kChatML) return {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  return {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
}

// Merges formed level by level: each token of the previous level (first the letters and the
// space-prefixed letters) is extended by each letter, skipping results already in the vocabulary.
std::vector<std::pair<std::string, std::string>> synthetic_merges(size_t count) {
  std::vector<std::pair<std::string, std::string>> merges;
  std::unordered_set<std::string> known;
  for (int b = 0; b < 256; ++b) known.insert(std::string(1, static_cast<char>(b)));
  std::vector<std::string> level;
  for (const char* c = kAlphabet; *c; ++c) level.push_back(std::string(" ") + *c);
  for (const char* c = kAlphabet; *c; ++c) level.push_back(std::string(1, *c));
  while (merges.size() < count) {
    std::vector<std::string> next_level;
    for (const std::string& left : level) {
      for (const char* c = kAlphabet; *c && merges.size() < count; ++c) {
        const std::string right(1, *c), joined = left + right;
        if (!known.insert(joined).second) continue;
        // " t" + "h": the left token exists (a byte or an earlier merge), so the merge is valid.
        if (left.size() == 2 && left[0] == ' ' && known.insert(left).second) {
          merges.emplace_back(" ", left.substr(1));
          if (merges.size() >= count) break;
        }
        merges.emplace_back(left, right);
        next_level.push_back(joined);
      }
      if (merges.size() >= count) break;
    }
    level.swap(next_level);
  }
  merges.resize(count);
  return merges;
}

}  // namespace

void write_synthetic_bpe_tokenizer(const std::filesystem::path& dir, int32_t vocab_size, ChatFamily family) {
  const std::vector<std::string> specials = special_tokens(family);
  const int64_t minimum = static_cast<int64_t>(specials.size()) + 256;
  require(vocab_size >= minimum, ErrorCode::kInvalidArgument,
          "synthetic tokenizer: vocab_size " + std::to_string(vocab_size) + " is below the minimum " +
              std::to_string(minimum) + " (special tokens + 256 bytes)");

  Json vocab = Json::object();
  int32_t next_id = static_cast<int32_t>(specials.size());
  for (int b = 0; b < 256; ++b) vocab[tokenizer::bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = next_id++;
  Json merges = Json::array();
  for (const auto& [left, right] : synthetic_merges(static_cast<size_t>(vocab_size - next_id))) {
    const std::string l = tokenizer::bytes_to_byte_level(left), r = tokenizer::bytes_to_byte_level(right);
    vocab[l + r] = next_id++;
    merges.push_back(Json::array({l, r}));
  }
  Json added = Json::array();
  for (size_t i = 0; i < specials.size(); ++i) {
    added.push_back({{"id", static_cast<int32_t>(i)}, {"content", specials[i]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const Json tokenizer_json = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         Json::array({{{"type", "Split"}, {"pattern", {{"Regex", kSplitPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}}};

  Json config;
  if (family == ChatFamily::kChatML) {
    config = {{"bos_token", nullptr}, {"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"},
              {"chat_template", chatml_jinja_template("You are a helpful AI assistant.")},
              {"tokenizer_class", "PreTrainedTokenizerFast"}};
  } else {
    config = {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"},
              {"chat_template",
               "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
               "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
              {"tokenizer_class", "PreTrainedTokenizerFast"}};
  }
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / "tokenizer.json", tokenizer_json.dump());
  write_file_atomic(dir / "tokenizer_config.json", config.dump(2));
}

}  // namespace hearth
