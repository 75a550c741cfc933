#include "storage/line_reader.h"

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hearth::storage {

LineReader::LineReader(const std::filesystem::path& path, size_t max_line_bytes) : path_(path), max_(max_line_bytes) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) {
    fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
         "cannot open " + path.string() + ": " + std::strerror(errno));
  }
}

LineReader::~LineReader() {
  if (file_) std::fclose(file_);
}

bool LineReader::next(std::string& line) {
  line.clear();
  int c;
  bool any = false;
  ++line_number_;
  while ((c = std::getc(file_)) != EOF) {
    any = true;
    if (c == '\n') break;
    if (line.size() >= max_) {
      fail(ErrorCode::kInvalidArgument, path_.string() + ":" + std::to_string(line_number_) +
                                            ": line is longer than the limit of " + std::to_string(max_ >> 20) +
                                            " MiB");
    }
    line.push_back(static_cast<char>(c));
  }
  if (std::ferror(file_)) fail(ErrorCode::kIo, "cannot read " + path_.string());
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return any;
}

}  // namespace hearth::storage
