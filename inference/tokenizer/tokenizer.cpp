#include "inference/tokenizer/tokenizer.h"

#include <regex>

#include "core/error.h"
#include "inference/tokenizer/bpe_tokenizer.h"
#include "inference/tokenizer/llama2c_tokenizer.h"

namespace hearth {

Tokenizer::~Tokenizer() = default;
int32_t Tokenizer::bos_id() const { return -1; }
int32_t Tokenizer::eos_id() const { return -1; }
std::vector<int32_t> Tokenizer::stop_ids() const {
  return eos_id() >= 0 ? std::vector<int32_t>{eos_id()} : std::vector<int32_t>{};
}
const ChatTemplate* Tokenizer::chat_template() const { return nullptr; }

namespace {

// The tokenizer file in a model folder: tokenizer.json, else tokenizer.bin, else one tok<N>.bin.
std::filesystem::path find_tokenizer_file(const std::filesystem::path& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.bin"}) {
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  }
  std::vector<std::filesystem::path> candidates;
  static const std::regex tok_n(R"(tok\d+\.bin)");
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), tok_n)) {
      candidates.push_back(entry.path());
    }
  }
  if (candidates.size() == 1) return candidates[0];
  if (candidates.empty()) {
    fail(ErrorCode::kNotFound, dir.string() + ": no tokenizer.json, tokenizer.bin or tok<N>.bin in this folder");
  }
  fail(ErrorCode::kInvalidArgument, dir.string() + ": several tok<N>.bin files; name the one to use");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) fail(ErrorCode::kNotFound, path.string() + ": no such tokenizer file or folder");
  const std::filesystem::path file = std::filesystem::is_directory(path) ? find_tokenizer_file(path) : path;
  if (file.extension() == ".json") return BpeTokenizer::load(file);
  if (file.extension() == ".bin") return Llama2cTokenizer::load(file);
  fail(ErrorCode::kUnsupported, file.string() + ": not a tokenizer.json or llama2.c tokenizer .bin file");
}

}  // namespace hearth
