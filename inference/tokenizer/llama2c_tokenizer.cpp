#include "inference/tokenizer/llama2c_tokenizer.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <queue>
#include <regex>

#include "core/atomic_file.h"
#include "core/error.h"
#include "inference/tokenizer/utf8.h"

namespace hearth {

Llama2cTokenizer::Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, const std::string& what)
    : pieces_(std::move(pieces)), scores_(std::move(scores)) {
  require(pieces_.size() == scores_.size(), ErrorCode::kInternal, what + ": pieces and scores differ in count");
  require(pieces_.size() >= static_cast<size_t>(kFirstByteToken + 256), ErrorCode::kCorruptFile,
          what + ": " + std::to_string(pieces_.size()) + " tokens is too few for the 256 byte tokens after <unk>, <s>, </s>");
  for (int b = 0; b < 256; ++b) {
    char expected[8];
    std::snprintf(expected, sizeof(expected), "<0x%02X>", b);
    require(pieces_[kFirstByteToken + b] == expected, ErrorCode::kCorruptFile,
            what + ": token " + std::to_string(kFirstByteToken + b) + " should be the byte piece " + expected);
  }
  for (size_t id = 0; id < pieces_.size(); ++id) {
    // A repeated piece would make lookups ambiguous; the first one wins, as in run.c's bsearch
    // over a stable sort, but llama2.c exports never repeat pieces, so one is a corrupt file.
    if (!ids_.emplace(pieces_[id], static_cast<int32_t>(id)).second) {
      fail(ErrorCode::kCorruptFile, what + ": token " + std::to_string(id) + " repeats an earlier piece");
    }
  }
  // Encoding starts every text with this piece (SentencePiece's dummy prefix): without it no
  // text could be encoded, so the file is refused now rather than at the first prompt.
  require(find(" ") >= 0, ErrorCode::kCorruptFile, what + ": has no \" \" piece (the dummy prefix every text starts with)");
}

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::load(const std::filesystem::path& path) {
  // The format does not store the count; a name like tok512.bin says what it must be.
  std::optional<size_t> expected_count;
  std::smatch m;
  const std::string name = path.filename().string();
  if (std::regex_match(name, m, std::regex(R"(tok(\d{1,9})\.bin)"))) expected_count = std::stoul(m[1].str());
  return from_bytes(read_file(path), path.string(), expected_count);
}

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::from_bytes(std::string_view data, const std::string& what,
                                                               std::optional<size_t> expected_count) {
  size_t pos = 0;
  const auto read_bytes = [&](void* dst, size_t n, const char* field) {
    if (data.size() - pos < n) {
      fail(ErrorCode::kCorruptFile, what + ": truncated at byte " + std::to_string(pos) + " reading " + field);
    }
    std::memcpy(dst, data.data() + pos, n);
    pos += n;
  };
  int32_t max_token_length = 0;
  read_bytes(&max_token_length, 4, "max_token_length");
  require(max_token_length > 0 && max_token_length <= 4096, ErrorCode::kCorruptFile,
          what + ": max_token_length " + std::to_string(max_token_length) + " is not in 1..4096");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (pos < data.size()) {
    float score = 0;
    int32_t length = 0;
    read_bytes(&score, 4, "a token score");
    read_bytes(&length, 4, "a token length");
    const std::string token = "token " + std::to_string(pieces.size());
    require(std::isfinite(score), ErrorCode::kCorruptFile, what + ": " + token + " has a non-finite score");
    require(length >= 0 && length <= max_token_length, ErrorCode::kCorruptFile,
            what + ": " + token + " has length " + std::to_string(length) + ", outside 0..max_token_length " +
                std::to_string(max_token_length));
    std::string piece(static_cast<size_t>(length), '\0');
    read_bytes(piece.data(), piece.size(), "a token's bytes");
    pieces.push_back(std::move(piece));
    scores.push_back(score);
  }
  if (expected_count) {
    require(pieces.size() == *expected_count, ErrorCode::kCorruptFile,
            what + ": holds " + std::to_string(pieces.size()) + " tokens but its name says " + std::to_string(*expected_count));
  }
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores), what);
}

int32_t Llama2cTokenizer::find(std::string_view piece) const {
  const auto it = ids_.find(piece);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int32_t> Llama2cTokenizer::initial_tokens(std::string_view text) const {
  std::vector<int32_t> tokens;
  // SentencePiece's dummy prefix: text starts as if after a space (run.c: only when non-empty).
  if (!text.empty()) tokens.push_back(find(" "));  // present: the constructor checks it
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = tokenizer::utf8_sequence_length(static_cast<unsigned char>(text[pos]));
    const int32_t id = find(text.substr(pos, n));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t i = 0; i < n; ++i) tokens.push_back(kFirstByteToken + static_cast<unsigned char>(text[pos + i]));
    }
    pos += n;
  }
  return tokens;
}

// run.c repeatedly merges the adjacent pair whose joined piece has the best score, leftmost on
// ties. A heap ordered by (score, position of the left token) finds the same pair each round
// without rescanning; entries whose tokens have since changed are skipped.
void Llama2cTokenizer::merge_by_score(std::vector<int32_t>& tokens) const {
  const int n = static_cast<int>(tokens.size());
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Candidate {
    float score;
    int left, right;
    int32_t left_id, right_id, merged;
    bool operator<(const Candidate& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  std::priority_queue<Candidate> queue;
  std::string joined;
  const auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int right = next[left];
    joined = pieces_[tokens[left]] + pieces_[tokens[right]];
    const int32_t merged = find(joined);
    if (merged >= 0) queue.push({scores_[merged], left, right, tokens[left], tokens[right], merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    if (tokens[c.left] != c.left_id || next[c.left] != c.right || tokens[c.right] != c.right_id) continue;
    tokens[c.left] = c.merged;
    tokens[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::vector<int32_t> out;
  for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push_back(tokens[i]);
  tokens.swap(out);
}

std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text, bool add_bos) const {
  tokenizer::require_valid_utf8(text, "text to encode");
  std::vector<int32_t> tokens = initial_tokens(text);
  merge_by_score(tokens);
  if (add_bos) tokens.insert(tokens.begin(), kBos);
  return tokens;
}

std::string Llama2cTokenizer::decode_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is not in the vocabulary (size " +
                                          std::to_string(vocab_size()) + ")");
  }
  if (id == kBos || id == kEos) return "";
  if (id >= kFirstByteToken && id < kFirstByteToken + 256) {
    // Byte tokens are written <0xXX>; their piece text is never output.
    return std::string(1, static_cast<char>(id - kFirstByteToken));
  }
  return pieces_[id];
}

std::string Llama2cTokenizer::decode_next(int32_t previous, int32_t id) const {
  std::string piece = decode_token(id);
  if (previous == kBos && !piece.empty() && piece[0] == ' ' && !(id >= kFirstByteToken && id < kFirstByteToken + 256)) {
    piece.erase(0, 1);
  }
  return piece;
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  int32_t previous = -1;
  for (int32_t id : ids) {
    out += decode_next(previous, id);
    previous = id;
  }
  return out;
}

}  // namespace hearth
