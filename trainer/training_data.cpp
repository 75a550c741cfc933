#include "trainer/training_data.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json.h"
#include "trainer/chat_tokenize.h"

namespace hearth::trainer {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// FNV-1a: a fixed hash, so the held-out split is the same on every machine and run.
uint64_t content_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool held_out_by_hash(const std::string& content, double fraction) {
  return double(content_hash(content) % 1000000) < fraction * 1e6;
}

bool is_jsonl(const std::string& name) {
  return name.size() >= 6 && name.compare(name.size() - 6, 6, ".jsonl") == 0;
}

// The protocol of inference/perplexity.h: every non-empty line encoded on its own with BOS.
TokenDocument text_document(const std::vector<std::string>& lines, const Tokenizer& tokenizer, const std::string& source) {
  TokenDocument doc;
  doc.source = source;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    std::vector<int32_t> ids = tokenizer.encode(line, /*add_bos=*/true);
    doc.tokens.insert(doc.tokens.end(), ids.begin(), ids.end());
  }
  doc.trained.assign(doc.tokens.size(), 1);
  return doc;
}

void add_if_trainable(TokenDocument doc, std::vector<TokenDocument>& to) {
  if (doc.tokens.size() >= 2 && trained_token_count(doc) > 0) to.push_back(std::move(doc));
}

void add_text_documents(const std::string& name, const std::string& contents, const Tokenizer& tokenizer,
                        const DataOptions& options, TrainingData& out) {
  std::vector<std::string> lines = split_lines(contents);
  if (options.split == EvalSplit::kTail) {
    const size_t held = size_t(std::floor(double(lines.size()) * options.eval_fraction));
    const size_t cut = lines.size() - held;
    std::vector<std::string> head(lines.begin(), lines.begin() + cut), tail(lines.begin() + cut, lines.end());
    add_if_trainable(text_document(head, tokenizer, name), out.train);
    add_if_trainable(text_document(tail, tokenizer, name + " (held out)"), out.eval);
    return;
  }
  // Paragraphs (blocks between blank lines) are the units of a hashed split.
  std::vector<std::string> paragraph;
  size_t first_line = 1;
  auto flush = [&](size_t line_no) {
    if (!paragraph.empty()) {
      std::string joined;
      for (const auto& l : paragraph) joined += l + "\n";
      const std::string source = name + ":" + std::to_string(first_line);
      auto& to = held_out_by_hash(joined, options.eval_fraction) ? out.eval : out.train;
      add_if_trainable(text_document(paragraph, tokenizer, source), to);
    }
    paragraph.clear();
    first_line = line_no + 1;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) {
      flush(i + 1);
    } else {
      paragraph.push_back(lines[i]);
    }
  }
  flush(lines.size());
}

std::string string_field(const Json& j, const char* key, const std::string& where) {
  require(j.contains(key), ErrorCode::kInvalidArgument, where + ": missing field \"" + key + "\"");
  require(j.at(key).is_string(), ErrorCode::kInvalidArgument, where + ": field \"" + key + "\" must be a string");
  return j.at(key).get<std::string>();
}

TokenDocument chat_record(const Json& j, const Tokenizer& tokenizer, const std::string& where) {
  const Json& messages = j.at("messages");
  require(messages.is_array() && !messages.empty(), ErrorCode::kInvalidArgument,
          where + ": \"messages\" must be a non-empty array");
  const ChatTemplate* tmpl = tokenizer.chat_template();
  require(tmpl != nullptr, ErrorCode::kInvalidArgument,
          where + ": chat data needs a tokenizer with a chat template (tokenizer_config.json), and this model's has none");
  std::vector<ChatMessage> chat;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string at = where + ": message " + std::to_string(i);
    require(messages[i].is_object(), ErrorCode::kInvalidArgument, at + " is not an object");
    chat.push_back({string_field(messages[i], "role", at), string_field(messages[i], "content", at)});
  }
  try {
    return tokenize_chat(tokenizer, *tmpl, chat);
  } catch (const Error& e) {
    fail(e.code(), where + ": " + e.what());
  }
}

TokenDocument prompt_completion_record(const Json& j, const Tokenizer& tokenizer, const std::string& where) {
  const std::string prompt = string_field(j, "prompt", where);
  const std::string completion = string_field(j, "completion", where);
  require(!completion.empty(), ErrorCode::kInvalidArgument, where + ": \"completion\" is empty");
  TokenDocument doc = tokenize_with_spans(tokenizer, prompt + completion, {{prompt.size(), prompt.size() + completion.size()}},
                                          /*add_bos=*/true);
  if (tokenizer.eos_id() >= 0) {
    doc.tokens.push_back(tokenizer.eos_id());
    doc.trained.push_back(1);
  }
  return doc;
}

void add_jsonl_documents(const std::string& name, const std::string& contents, const Tokenizer& tokenizer,
                         const DataOptions& options, TrainingData& out) {
  std::vector<std::string> lines = split_lines(contents);
  std::vector<std::pair<TokenDocument, std::string>> records;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(i + 1);
    Json j;
    try {
      j = Json::parse(lines[i]);
    } catch (const nlohmann::json::exception&) {
      fail(ErrorCode::kInvalidArgument, where + ": not valid JSON");
    }
    require(j.is_object(), ErrorCode::kInvalidArgument, where + ": a record must be a JSON object");
    TokenDocument doc;
    if (j.contains("messages")) {
      doc = chat_record(j, tokenizer, where);
    } else if (j.contains("prompt") || j.contains("completion")) {
      doc = prompt_completion_record(j, tokenizer, where);
    } else {
      fail(ErrorCode::kInvalidArgument, where + ": a record needs \"messages\" (chat) or \"prompt\" and \"completion\"");
    }
    doc.source = where;
    records.emplace_back(std::move(doc), lines[i]);
  }
  require(!records.empty(), ErrorCode::kInvalidArgument, name + ": the file has no records");
  const size_t held = size_t(std::floor(double(records.size()) * options.eval_fraction));
  for (size_t r = 0; r < records.size(); ++r) {
    const bool eval = options.split == EvalSplit::kTail ? r >= records.size() - held
                                                        : held_out_by_hash(records[r].second, options.eval_fraction);
    add_if_trainable(std::move(records[r].first), eval ? out.eval : out.train);
  }
}

std::vector<fs::path> expand(const std::vector<fs::path>& paths) {
  std::vector<fs::path> files;
  for (const fs::path& p : paths) {
    require(fs::exists(p), ErrorCode::kNotFound, "data path " + p.string() + " does not exist");
    if (!fs::is_directory(p)) {
      files.push_back(p);
      continue;
    }
    std::vector<fs::path> inside;
    for (const auto& e : fs::recursive_directory_iterator(p)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && !name.empty() && name[0] != '.') inside.push_back(e.path());
    }
    std::sort(inside.begin(), inside.end());
    files.insert(files.end(), inside.begin(), inside.end());
  }
  return files;
}

}  // namespace

EvalSplit parse_eval_split(const std::string& name) {
  if (name == "tail") return EvalSplit::kTail;
  if (name == "hash") return EvalSplit::kHash;
  fail(ErrorCode::kInvalidArgument, "--eval-split must be tail or hash, not \"" + name + "\"");
}

void add_file_documents(const std::string& name, const std::string& contents, const Tokenizer& tokenizer,
                        const DataOptions& options, TrainingData& out) {
  if (is_jsonl(name)) {
    add_jsonl_documents(name, contents, tokenizer, options, out);
  } else {
    add_text_documents(name, contents, tokenizer, options, out);
  }
}

TrainingData load_training_data(const std::vector<fs::path>& paths, const Tokenizer& tokenizer, const DataOptions& options) {
  require(options.eval_fraction >= 0 && options.eval_fraction <= 0.9, ErrorCode::kInvalidArgument,
          "--eval-fraction must be between 0 and 0.9");
  require(!paths.empty(), ErrorCode::kInvalidArgument, "no training data given (--data)");
  TrainingData out;
  for (const fs::path& file : expand(paths)) {
    add_file_documents(file.string(), read_file(file, size_t(1) << 30), tokenizer, options, out);
  }
  require(!out.train.empty(), ErrorCode::kInvalidArgument, "the training data holds no trainable tokens");
  return out;
}

}  // namespace hearth::trainer
