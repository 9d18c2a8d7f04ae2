#pragma once
/// Small text helpers shared by the file readers and writers.
#include <charconv>
#include <string>

namespace nanonav::detail {

/// The shortest decimal text that reads back as exactly `v` (std::to_chars round trip).
inline std::string format_double(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace nanonav::detail
