// Reads a text file line by line with a hard limit on a line's length, so a 100 MB line is
// a clear error after reading at most the limit, never an exhausted memory.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>

namespace hearth::storage {

class LineReader {
 public:
  LineReader(const std::filesystem::path& path, size_t max_line_bytes);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its "\n" (or "\r\n"); false at the end of the file. A line longer
  // than the limit is kInvalidArgument naming file:line.
  bool next(std::string& line);
  size_t line_number() const { return line_number_; }

 private:
  std::filesystem::path path_;
  size_t max_;
  std::FILE* file_ = nullptr;
  size_t line_number_ = 0;
};

}  // namespace hearth::storage
