#include "inference/tokenizer/metaspace_bpe_model.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <queue>

#include "core/error.h"
#include "inference/tokenizer/utf8.h"

namespace hearth::tokenizer {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 '▁'

// The byte token's text, as Hugging Face writes it: "<0x0A>".
std::string byte_token(unsigned b) {
  char name[8];
  std::snprintf(name, sizeof(name), "<0x%02X>", b);
  return name;
}

}  // namespace

MetaspaceBpeModel::MetaspaceBpeModel(std::vector<std::string> tokens,
                                     const std::vector<std::pair<std::string, std::string>>& merges, int32_t unk_id,
                                     const std::string& what)
    : vocabulary_(std::move(tokens), merges, what), unk_id_(unk_id) {
  for (unsigned b = 0; b < 256; ++b) byte_ids_[b] = find(byte_token(b));
}

std::vector<int32_t> MetaspaceBpeModel::characters(std::string_view text) const {
  std::vector<int32_t> symbols;
  symbols.reserve(text.size());
  bool last_unk = false;
  for (size_t pos = 0; pos < text.size();) {
    const size_t start = pos;
    next_code_point(text, pos);
    const std::string_view c = text.substr(start, pos - start);
    if (const int32_t id = find(c); id >= 0) {
      symbols.push_back(id);
      last_unk = false;
      continue;
    }
    bool bytes_known = true;
    for (char b : c) bytes_known = bytes_known && byte_ids_[static_cast<unsigned char>(b)] >= 0;
    if (bytes_known) {
      for (char b : c) symbols.push_back(byte_ids_[static_cast<unsigned char>(b)]);
      last_unk = false;
      continue;
    }
    require(unk_id_ >= 0, ErrorCode::kInvalidArgument, "a character has no token and the tokenizer has no unknown token");
    if (!last_unk) symbols.push_back(unk_id_);  // consecutive unknowns are one token (fuse_unk)
    last_unk = true;
  }
  return symbols;
}

void MetaspaceBpeModel::encode(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<int32_t> sym = characters(text);
  const int n = static_cast<int>(sym.size());
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) next[i] = i + 1 < n ? i + 1 : -1, prev[i] = i - 1;
  // Candidate merges of (i, next[i]): lowest rank first, leftmost on ties. An entry is stale
  // once either side has merged into something else; it is then skipped.
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    const BpeVocabulary::Merge* m = vocabulary_.merge(sym[i], sym[next[i]]);
    if (m) heap.push({m->rank, i, m->result});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (sym[c.pos] < 0 || next[c.pos] < 0) continue;
    const BpeVocabulary::Merge* m = vocabulary_.merge(sym[c.pos], sym[next[c.pos]]);
    if (!m || m->rank != c.rank) continue;
    const int gone = next[c.pos];
    sym[c.pos] = c.result;
    sym[gone] = -1;
    next[c.pos] = next[gone];
    if (next[gone] >= 0) prev[next[gone]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i < n; ++i) {
    if (sym[i] >= 0) ids.push_back(sym[i]);
  }
}

std::string MetaspaceBpeModel::decode(int32_t id) const {
  const std::string& t = vocabulary_.token(id);
  if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(t[3]) && std::isxdigit(t[4])) {
    const unsigned b = static_cast<unsigned>(std::strtoul(t.substr(3, 2).c_str(), nullptr, 16));
    if (byte_ids_[b] == id) return std::string(1, static_cast<char>(b));
  }
  return with_spaces(t);
}

std::string MetaspaceBpeModel::with_spaces(std::string_view t) {
  std::string out;
  for (size_t pos = 0; pos < t.size();) {
    if (t.compare(pos, kMetaspace.size(), kMetaspace) == 0) {
      out += ' ';
      pos += kMetaspace.size();
    } else {
      out += t[pos++];
    }
  }
  return out;
}

}  // namespace hearth::tokenizer
