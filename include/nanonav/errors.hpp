#pragma once
/// Typed exceptions for outside input (files, flags, maps). Programmer bugs go through
/// NANONAV_ASSERT instead (detail/assert.hpp).
#include <cstdint>
#include <stdexcept>
#include <string>

namespace nanonav {

/// Base of every exception nanonav throws for bad outside input.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An argument outside its documented domain (size 0, density 1.5, position off the map...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A file could not be opened, read or written.
class IoError : public Error {
 public:
  IoError(const std::string& path, const std::string& what)
      : Error(path + ": " + what), path_(path) {}
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// A text file (map, scenario) that does not follow its format: names file, line and what
/// was expected.
class ParseError : public Error {
 public:
  ParseError(const std::string& path, std::size_t line, const std::string& what)
      : Error(path + ":" + std::to_string(line) + ": " + what), path_(path), line_(line) {}
  const std::string& path() const noexcept { return path_; }
  std::size_t line() const noexcept { return line_; }

 private:
  std::string path_;
  std::size_t line_;
};

/// A binary file (dataset, checkpoint) that is corrupt, truncated, of another version or of
/// the wrong shape: names file, byte offset and a hint.
class FormatError : public Error {
 public:
  FormatError(const std::string& path, std::uint64_t offset, const std::string& what,
              const std::string& hint = {})
      : Error(path + " (byte " + std::to_string(offset) + "): " + what +
              (hint.empty() ? std::string() : " - " + hint)),
        path_(path), offset_(offset) {}
  const std::string& path() const noexcept { return path_; }
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::string path_;
  std::uint64_t offset_;
};

}  // namespace nanonav
