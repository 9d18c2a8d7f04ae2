#pragma once
/// Reading and writing maps: the Moving AI benchmark formats (.map, .scen) and nanonav's own
/// small text map format for hand-written maps.
///
/// Moving AI `.map` (https://movingai.com/benchmarks/formats.html):
///     type octile
///     height H
///     width W
///     map
///     <H rows of exactly W characters>
/// '.' and 'G' are passable; '@', 'O' and 'T' are blocked. 'S' (swamp) and 'W' (water) are
/// read as passable (nanonav has no terrain costs); any other character is a ParseError.
/// The `height` and `width` lines may come in either order. A trailing '\r' on any line is
/// ignored, and so are empty lines after the last row. Writing uses '.' and '@' only.
///
/// Moving AI `.scen`: a first line `version 1` (or `version 1.0`), then one problem per line
/// with 9 TAB-separated fields: bucket, map path, map width, map height, start x, start y,
/// goal x, goal y, optimal length. x is the column and y the row (ScenProblem stores Pos).
/// Empty lines are skipped. The optimal length assumes 8-connected moves (diagonal sqrt(2)),
/// no corner cutting, and is printed with about 6 significant digits.
///
/// nanonav text maps (for tests and examples, easy to write inline in a string):
///     ; a comment line (starts with ';')
///     S..#
///     .#.G
/// One line per row, one character per cell: '.' free, '#' blocked, 'S' the start and 'G'
/// the goal (both free; each at most once). Leading and trailing spaces/tabs of a line are
/// ignored, and so are empty lines and comment lines, so a map may be indented inside a raw
/// string literal. All rows must have the same width.
///
/// Malformed input throws ParseError naming the file (or the `origin` given for streams and
/// strings), the 1-based line and what was expected. Files that cannot be opened or written
/// throw IoError. Every writer to a path is atomic: it writes `<path>.tmp.<random>` and then
/// renames it over `path`, so a reader never sees a half-written file.
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <istream>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "detail/rng.hpp"
#include "detail/atomic_file.hpp"
#include "detail/text.hpp"
#include "errors.hpp"
#include "grid.hpp"

namespace nanonav {

/// One problem of a Moving AI .scen file.
struct ScenProblem {
  int bucket = 0;
  std::string map;      ///< the map path as written in the file (see resolve_scen_map)
  int width = 0;        ///< map width the problem was made for
  int height = 0;       ///< map height the problem was made for
  Pos start;            ///< (row = y, col = x)
  Pos goal;
  double optimal = 0.0; ///< optimal 8-connected length, no corner cutting
};

/// A nanonav text map: the grid and, when marked, the start and goal.
struct TextMap {
  Grid grid;
  std::optional<Pos> start;
  std::optional<Pos> goal;
};

namespace detail {

/// Reads a whole file into a string; IoError if it cannot be opened or read.
inline std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path, "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(path, "read failed");
  return ss.str();
}

/// Writes `content` to `path` atomically (detail/atomic_file.hpp: temp file, fsync, rename).
inline void write_file_atomic(const std::string& path, std::string_view content) {
  write_file_atomically(path, content.data(), content.size());
}

/// Splits text into lines, dropping a '\r' before each '\n' (the views point into `text`).
inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    const std::size_t next = end == std::string_view::npos ? text.size() : end + 1;
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    begin = next;
  }
  return lines;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

inline std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 40;
  std::string out = "'";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out + "'";
}

/// Parses a whole field as a decimal int, or throws ParseError saying which field it was.
inline int parse_int_field(std::string_view field, const std::string& origin, std::size_t line,
                           const char* what) {
  const std::string_view f = trim(field);
  int value = 0;
  const auto [ptr, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
  if (f.empty() || ec != std::errc() || ptr != f.data() + f.size())
    throw ParseError(origin, line,
                     std::string("expected an integer ") + what + ", got " + quoted(field));
  return value;
}

inline double parse_double_field(std::string_view field, const std::string& origin,
                                 std::size_t line, const char* what) {
  const std::string_view f = trim(field);
  double value = 0.0;
  const auto [ptr, ec] =
      std::from_chars(f.data(), f.data() + f.size(), value, std::chars_format::general);
  if (f.empty() || ec != std::errc() || ptr != f.data() + f.size())
    throw ParseError(origin, line,
                     std::string("expected a number ") + what + ", got " + quoted(field));
  return value;
}

/// Parses a `key value` header line of a .map file, e.g. "height 512".
inline int parse_map_dim(std::string_view line, std::string_view key, const std::string& origin,
                         std::size_t lineno) {
  const std::string_view t = trim(line);
  if (t.substr(0, key.size()) != key || t.size() == key.size() ||
      (t[key.size()] != ' ' && t[key.size()] != '\t'))
    throw ParseError(origin, lineno,
                     "expected '" + std::string(key) + " <n>', got " + quoted(line));
  const int v = parse_int_field(t.substr(key.size()), origin, lineno, std::string(key).c_str());
  if (v <= 0)
    throw ParseError(origin, lineno, "expected a positive " + std::string(key) + ", got " +
                                         std::to_string(v));
  return v;
}

inline std::string stream_text(std::istream& in, const std::string& origin) {
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(origin, "read failed");
  return ss.str();
}

}  // namespace detail

// ---- Moving AI .map ------------------------------------------------------------------------

/// Parses the text of a Moving AI .map file; `origin` names it in error messages.
inline Grid parse_movingai_map(std::string_view text, const std::string& origin = "<string>") {
  const auto lines = detail::split_lines(text);
  const auto line_at = [&](std::size_t i) -> std::string_view {
    if (i >= lines.size())
      throw ParseError(origin, i + 1, "unexpected end of file (header is 'type octile', "
                                      "'height H', 'width W', 'map')");
    return lines[i];
  };
  if (detail::trim(line_at(0)) != "type octile")
    throw ParseError(origin, 1, "expected 'type octile', got " + detail::quoted(lines[0]));
  int height = 0, width = 0;
  for (std::size_t i = 1; i <= 2; ++i) {
    const std::string_view t = detail::trim(line_at(i));
    const bool is_height = t.substr(0, 6) == "height";
    if (is_height ? height != 0 : width != 0)
      throw ParseError(origin, i + 1, "expected 'height H' and 'width W' once each");
    if (is_height)
      height = detail::parse_map_dim(t, "height", origin, i + 1);
    else
      width = detail::parse_map_dim(t, "width", origin, i + 1);
  }
  if (detail::trim(line_at(3)) != "map")
    throw ParseError(origin, 4, "expected 'map', got " + detail::quoted(lines[3]));
  Grid g(width, height);
  for (int r = 0; r < height; ++r) {
    const std::size_t li = 4 + static_cast<std::size_t>(r);
    if (li >= lines.size())
      throw ParseError(origin, li + 1, "expected " + std::to_string(height) + " map rows, got " +
                                           std::to_string(r) + " (file ends)");
    const std::string_view row = lines[li];
    if (row.size() != static_cast<std::size_t>(width))
      throw ParseError(origin, li + 1, "expected a row of " + std::to_string(width) +
                                           " characters, got " + std::to_string(row.size()));
    for (int c = 0; c < width; ++c) {
      switch (row[static_cast<std::size_t>(c)]) {
        case '.': case 'G': case 'S': case 'W': break;
        case '@': case 'O': case 'T': g.set_blocked({r, c}, true); break;
        default:
          throw ParseError(origin, li + 1,
                           "unexpected character '" + std::string(1, row[static_cast<std::size_t>(c)]) +
                               "' at column " + std::to_string(c + 1) +
                               " (expected one of . G S W @ O T)");
      }
    }
  }
  for (std::size_t li = 4 + static_cast<std::size_t>(height); li < lines.size(); ++li)
    if (!detail::trim(lines[li]).empty())
      throw ParseError(origin, li + 1, "expected end of file after " + std::to_string(height) +
                                           " map rows, got " + detail::quoted(lines[li]));
  return g;
}

/// Reads a Moving AI .map from a stream; `origin` names it in error messages.
inline Grid read_movingai_map(std::istream& in, const std::string& origin = "<stream>") {
  return parse_movingai_map(detail::stream_text(in, origin), origin);
}

/// Reads a Moving AI .map file. Throws IoError (cannot open) or ParseError (malformed).
inline Grid read_movingai_map(const std::string& path) {
  return parse_movingai_map(detail::read_file_text(path), path);
}

/// The Moving AI .map text of a grid ('.' free, '@' blocked).
inline std::string format_movingai_map(const GridView& g) {
  std::string s = "type octile\nheight " + std::to_string(g.height) + "\nwidth " +
                  std::to_string(g.width) + "\nmap\n";
  s.reserve(s.size() + static_cast<std::size_t>(g.width + 1) * static_cast<std::size_t>(g.height));
  for (int r = 0; r < g.height; ++r) {
    for (int c = 0; c < g.width; ++c) s += g.blocked({r, c}) ? '@' : '.';
    s += '\n';
  }
  return s;
}

inline void write_movingai_map(std::ostream& out, const GridView& g) {
  out << format_movingai_map(g);
}

/// Writes a Moving AI .map file atomically.
inline void write_movingai_map(const std::string& path, const GridView& g) {
  detail::write_file_atomic(path, format_movingai_map(g));
}

// ---- Moving AI .scen -----------------------------------------------------------------------

/// Parses the text of a Moving AI .scen file; `origin` names it in error messages.
inline std::vector<ScenProblem> parse_movingai_scen(std::string_view text,
                                                    const std::string& origin = "<string>") {
  const auto lines = detail::split_lines(text);
  if (lines.empty()) throw ParseError(origin, 1, "expected 'version 1', got an empty file");
  const std::string_view v = detail::trim(lines[0]);
  if (v != "version 1" && v != "version 1.0")
    throw ParseError(origin, 1, "expected 'version 1', got " + detail::quoted(lines[0]));
  std::vector<ScenProblem> out;
  for (std::size_t li = 1; li < lines.size(); ++li) {
    const std::string_view line = lines[li];
    if (detail::trim(line).empty()) continue;
    std::string_view fields[9];
    std::size_t nf = 0, begin = 0;
    while (true) {
      const std::size_t tab = line.find('\t', begin);
      const std::size_t end = tab == std::string_view::npos ? line.size() : tab;
      if (nf < 9) fields[nf] = line.substr(begin, end - begin);
      ++nf;
      if (tab == std::string_view::npos) break;
      begin = tab + 1;
    }
    const std::size_t lineno = li + 1;
    if (nf != 9)
      throw ParseError(origin, lineno, "expected 9 tab-separated fields (bucket, map, width, "
                                       "height, start x, start y, goal x, goal y, optimal), got " +
                                           std::to_string(nf));
    ScenProblem p;
    p.bucket = detail::parse_int_field(fields[0], origin, lineno, "bucket");
    p.map = std::string(detail::trim(fields[1]));
    if (p.map.empty()) throw ParseError(origin, lineno, "expected a map path, got an empty field");
    p.width = detail::parse_int_field(fields[2], origin, lineno, "map width");
    p.height = detail::parse_int_field(fields[3], origin, lineno, "map height");
    if (p.width <= 0 || p.height <= 0)
      throw ParseError(origin, lineno, "expected a positive map width and height, got " +
                                           std::to_string(p.width) + "x" + std::to_string(p.height));
    p.start.col = detail::parse_int_field(fields[4], origin, lineno, "start x");
    p.start.row = detail::parse_int_field(fields[5], origin, lineno, "start y");
    p.goal.col = detail::parse_int_field(fields[6], origin, lineno, "goal x");
    p.goal.row = detail::parse_int_field(fields[7], origin, lineno, "goal y");
    p.optimal = detail::parse_double_field(fields[8], origin, lineno, "optimal length");
    const auto inside = [&](Pos q) {
      return q.row >= 0 && q.col >= 0 && q.row < p.height && q.col < p.width;
    };
    for (const auto& [q, name] : {std::pair<Pos, const char*>{p.start, "start"},
                                  std::pair<Pos, const char*>{p.goal, "goal"}})
      if (!inside(q))
        throw ParseError(origin, lineno,
                         std::string(name) + " (x " + std::to_string(q.col) + ", y " +
                             std::to_string(q.row) + ") is outside the " +
                             std::to_string(p.width) + "x" + std::to_string(p.height) + " map");
    if (!(p.optimal >= 0.0))
      throw ParseError(origin, lineno, "expected a non-negative optimal length");
    out.push_back(std::move(p));
  }
  return out;
}

inline std::vector<ScenProblem> read_movingai_scen(std::istream& in,
                                                   const std::string& origin = "<stream>") {
  return parse_movingai_scen(detail::stream_text(in, origin), origin);
}

/// Reads a Moving AI .scen file. Throws IoError (cannot open) or ParseError (malformed).
inline std::vector<ScenProblem> read_movingai_scen(const std::string& path) {
  return parse_movingai_scen(detail::read_file_text(path), path);
}

/// The .scen text of a list of problems (optimal lengths in shortest round-trip form).
inline std::string format_movingai_scen(const std::vector<ScenProblem>& problems) {
  std::string s = "version 1\n";
  for (const auto& p : problems) {
    s += std::to_string(p.bucket) + '\t' + p.map + '\t' + std::to_string(p.width) + '\t' +
         std::to_string(p.height) + '\t' + std::to_string(p.start.col) + '\t' +
         std::to_string(p.start.row) + '\t' + std::to_string(p.goal.col) + '\t' +
         std::to_string(p.goal.row) + '\t' + detail::format_double(p.optimal) + '\n';
  }
  return s;
}

inline void write_movingai_scen(std::ostream& out, const std::vector<ScenProblem>& problems) {
  out << format_movingai_scen(problems);
}

/// Writes a .scen file atomically.
inline void write_movingai_scen(const std::string& path,
                                const std::vector<ScenProblem>& problems) {
  detail::write_file_atomic(path, format_movingai_scen(problems));
}

/// Where the map of a problem is, given the path of its .scen file. Scenario files name maps
/// relative to the benchmark's own tree (e.g. "maps/dao/arena.map"), so this returns, in order
/// of preference: the path itself if absolute, the path relative to the .scen file's folder if
/// that file exists, else the map's file name in the .scen file's folder.
inline std::string resolve_scen_map(const std::string& scen_path, const std::string& map_field) {
  namespace fs = std::filesystem;
  const fs::path m(map_field);
  if (m.is_absolute()) return m.string();
  const fs::path folder = fs::path(scen_path).parent_path();
  const fs::path rel = folder / m;
  std::error_code ec;
  if (fs::exists(rel, ec)) return rel.string();
  return (folder / m.filename()).string();
}

// ---- nanonav text maps ---------------------------------------------------------------------

/// Parses a nanonav text map (format at the top of this header).
inline TextMap parse_text_map(std::string_view text, const std::string& origin = "<string>") {
  const auto lines = detail::split_lines(text);
  std::vector<std::pair<std::size_t, std::string_view>> rows;  // (line number, row)
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view t = detail::trim(lines[i]);
    if (t.empty() || t.front() == ';') continue;
    if (!rows.empty() && t.size() != rows.front().second.size())
      throw ParseError(origin, i + 1, "expected a row of " +
                                          std::to_string(rows.front().second.size()) +
                                          " cells like the first row, got " +
                                          std::to_string(t.size()));
    rows.emplace_back(i + 1, t);
  }
  if (rows.empty()) throw ParseError(origin, lines.size() + 1, "expected at least one map row");
  const int width = static_cast<int>(rows.front().second.size());
  const int height = static_cast<int>(rows.size());
  TextMap m{Grid(width, height), std::nullopt, std::nullopt};
  for (int r = 0; r < height; ++r) {
    const auto& [lineno, row] = rows[static_cast<std::size_t>(r)];
    for (int c = 0; c < width; ++c) {
      const char ch = row[static_cast<std::size_t>(c)];
      const Pos p{r, c};
      if (ch == '#') {
        m.grid.set_blocked(p, true);
      } else if (ch == 'S' || ch == 'G') {
        auto& slot = ch == 'S' ? m.start : m.goal;
        if (slot)
          throw ParseError(origin, lineno, std::string("a second '") + ch + "' at column " +
                                               std::to_string(c + 1) + " (expected at most one)");
        slot = p;
      } else if (ch != '.') {
        throw ParseError(origin, lineno, "unexpected character '" + std::string(1, ch) +
                                             "' at column " + std::to_string(c + 1) +
                                             " (expected one of . # S G)");
      }
    }
  }
  return m;
}

/// Reads a nanonav text map from a stream; `origin` names it in error messages.
inline TextMap read_text_map(std::istream& in, const std::string& origin = "<stream>") {
  return parse_text_map(detail::stream_text(in, origin), origin);
}

/// Reads a nanonav text map file.
inline TextMap read_text_map(const std::string& path) {
  return parse_text_map(detail::read_file_text(path), path);
}

/// The nanonav text of a grid, with the start and goal marked when given.
inline std::string format_text_map(const GridView& g, std::optional<Pos> start = std::nullopt,
                                   std::optional<Pos> goal = std::nullopt) {
  for (const auto& q : {start, goal})
    if (q && !g.is_free(*q))
      throw InvalidArgument("format_text_map: start/goal (" + std::to_string(q->row) + "," +
                            std::to_string(q->col) + ") is not a free cell of the map");
  if (start && goal && *start == *goal)
    throw InvalidArgument("format_text_map: start and goal are the same cell");
  std::string s;
  s.reserve(static_cast<std::size_t>(g.width + 1) * static_cast<std::size_t>(g.height));
  for (int r = 0; r < g.height; ++r) {
    for (int c = 0; c < g.width; ++c) {
      const Pos p{r, c};
      s += (start && *start == p) ? 'S' : (goal && *goal == p) ? 'G' : g.blocked(p) ? '#' : '.';
    }
    s += '\n';
  }
  return s;
}

/// Writes a nanonav text map file atomically.
inline void write_text_map(const std::string& path, const GridView& g,
                           std::optional<Pos> start = std::nullopt,
                           std::optional<Pos> goal = std::nullopt) {
  detail::write_file_atomic(path, format_text_map(g, start, goal));
}

}  // namespace nanonav
