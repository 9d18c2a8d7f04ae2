#include <catch2/catch.hpp>

#include <nanonav/detail/rng.hpp>
#include <nanonav/map_io.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace nanonav;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) {
  const fs::path dir = fs::path(NANONAV_TEST_TMPDIR) / "map_io";
  fs::create_directories(dir);
  return (dir / name).string();
}

void write_raw(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

Grid random_grid(std::uint64_t seed, int w, int h, double density) {
  Rng rng(seed);
  Grid g(w, h);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) g.set_blocked({r, c}, rng.uniform() < density);
  return g;
}

// Parses `text` as a file named `path` (written to disk) and checks that the ParseError names
// the file, the line and contains `what`.
template <class Reader>
void expect_parse_error(Reader read, const std::string& path, const std::string& text,
                        std::size_t line, const std::string& what) {
  write_raw(path, text);
  INFO("input:\n" << text);
  try {
    read(path);
    FAIL("no ParseError thrown");
  } catch (const ParseError& e) {
    CHECK(e.path() == path);
    CHECK(e.line() == line);
    CHECK_THAT(e.what(), Catch::StartsWith(path + ":" + std::to_string(line) + ": "));
    CHECK_THAT(e.what(), Catch::Contains(what));
  }
}

const std::string kHeader = "type octile\nheight 2\nwidth 3\nmap\n";

}  // namespace

TEST_CASE("Moving AI .map: characters, round trip through strings, streams and files",
          "[map_io]") {
  const Grid g = parse_movingai_map("type octile\nheight 2\nwidth 8\nmap\n.GSW@OT.\n@.......\n");
  REQUIRE(g.width() == 8);
  REQUIRE(g.height() == 2);
  const bool expect_blocked[8] = {false, false, false, false, true, true, true, false};
  for (int c = 0; c < 8; ++c) CHECK(g.blocked({0, c}) == expect_blocked[c]);
  CHECK(g.blocked({1, 0}));
  CHECK(g.count_blocked() == 4);

  const Grid r = random_grid(1, 37, 23, 0.3);
  const std::string text = format_movingai_map(r);
  CHECK(text.substr(0, 35) == "type octile\nheight 23\nwidth 37\nmap\n");
  CHECK(parse_movingai_map(text) == r);
  std::stringstream ss;
  write_movingai_map(ss, r);
  CHECK(read_movingai_map(ss, "mem") == r);
  const std::string path = tmp_path("round.map");
  write_movingai_map(path, r);
  CHECK(read_movingai_map(path) == r);
  // Windows line endings and trailing blank lines are accepted.
  std::string crlf;
  for (char ch : text) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
  CHECK(parse_movingai_map(crlf + "\r\n\n") == r);
  // width before height is accepted too.
  CHECK(parse_movingai_map("type octile\nwidth 2\nheight 1\nmap\n.@\n").blocked({0, 1}));
}

TEST_CASE("Moving AI .map: malformed files name file, line and what was expected", "[map_io]") {
  const std::string p = tmp_path("bad.map");
  const auto read = [](const std::string& path) { return read_movingai_map(path); };
  expect_parse_error(read, p, "type tile\nheight 2\nwidth 3\nmap\n...\n...\n", 1, "type octile");
  expect_parse_error(read, p, "type octile\nheight two\nwidth 3\nmap\n...\n...\n", 2, "integer");
  expect_parse_error(read, p, "type octile\nheight 0\nwidth 3\nmap\n", 2, "positive height");
  expect_parse_error(read, p, "type octile\nheight 2\nwidht 3\nmap\n...\n...\n", 3, "width");
  expect_parse_error(read, p, "type octile\nheight 2\nheight 3\nmap\n", 3, "once each");
  expect_parse_error(read, p, "type octile\nheight 2\nwidth 3\nmop\n...\n...\n", 4, "'map'");
  expect_parse_error(read, p, "type octile\nheight 2\n", 3, "end of file");
  expect_parse_error(read, p, kHeader + "...\n..\n", 6, "row of 3 characters, got 2");
  expect_parse_error(read, p, kHeader + "....\n...\n", 5, "row of 3 characters, got 4");
  expect_parse_error(read, p, kHeader + "...\n.x.\n", 6, "unexpected character 'x' at column 2");
  expect_parse_error(read, p, kHeader + "...\n", 6, "expected 2 map rows, got 1");
  expect_parse_error(read, p, kHeader + "...\n...\n...\n", 7, "end of file after 2 map rows");
  CHECK_THROWS_AS(read_movingai_map(tmp_path("does-not-exist.map")), IoError);
  // Stream errors name the origin given by the caller.
  std::istringstream in("type octile\nheight 1\nwidth 1\nmap\n#\n");
  CHECK_THROWS_WITH(read_movingai_map(in, "net://map"), Catch::StartsWith("net://map:5: "));
}

TEST_CASE("Moving AI .scen: round trip and malformed lines", "[map_io]") {
  std::vector<ScenProblem> ps = {
      {0, "maps/dao/arena.map", 49, 49, {11, 1}, {12, 1}, 1.0},
      {7, "a b.map", 10, 4, {3, 9}, {0, 0}, 10.242640687119286},
  };
  const std::string text = format_movingai_scen(ps);
  CHECK(text.substr(0, 10) == "version 1\n");
  CHECK(text.find("0\tmaps/dao/arena.map\t49\t49\t1\t11\t1\t12\t1\n") != std::string::npos);
  for (const auto& back : {parse_movingai_scen(text), read_movingai_scen([&] {
                             const std::string p = tmp_path("round.scen");
                             write_movingai_scen(p, ps);
                             return p;
                           }())}) {
    REQUIRE(back.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(back[i].bucket == ps[i].bucket);
      CHECK(back[i].map == ps[i].map);
      CHECK(back[i].width == ps[i].width);
      CHECK(back[i].height == ps[i].height);
      CHECK(back[i].start == ps[i].start);
      CHECK(back[i].goal == ps[i].goal);
      CHECK(back[i].optimal == ps[i].optimal);  // shortest round-trip form: exact
    }
  }
  std::istringstream in(text);
  CHECK(read_movingai_scen(in, "mem").size() == 2);
  std::istringstream bad("version 1\n1\tm.map\n");
  CHECK_THROWS_WITH(read_movingai_scen(bad, "mem"), Catch::StartsWith("mem:2: "));
  const std::string p = tmp_path("bad.scen");
  const auto read = [](const std::string& path) { return read_movingai_scen(path); };
  const std::string v = "version 1\n";
  expect_parse_error(read, p, "version 2\n", 1, "version 1");
  expect_parse_error(read, p, "", 1, "version 1");
  expect_parse_error(read, p, v + "0\tm.map\t4\t4\t0\t0\t1\t1\t1.4\n0\tm.map\t4\t4\t0\t0\t1\t1\n", 3,
                     "9 tab-separated fields");
  expect_parse_error(read, p, v + "0 m.map 4 4 0 0 1 1 1.4\n", 2, "got 1");
  expect_parse_error(read, p, v + "0\tm.map\t4\t4\tx\t0\t1\t1\t1.4\n", 2, "integer start x");
  expect_parse_error(read, p, v + "0\tm.map\t4\tfour\t0\t0\t1\t1\t1.4\n", 2, "integer map height");
  expect_parse_error(read, p, v + "0\tm.map\t4\t4\t0\t0\t1\t1\tlong\n", 2, "number optimal");
  expect_parse_error(read, p, v + "0\tm.map\t4\t4\t0\t0\t1\t1\t\n", 2, "number optimal");
  expect_parse_error(read, p, v + "0\t\t4\t4\t0\t0\t1\t1\t1\n", 2, "map path");
  expect_parse_error(read, p, v + "0\tm.map\t0\t4\t0\t0\t1\t1\t1\n", 2, "positive map width");
  expect_parse_error(read, p, v + "0\tm.map\t4\t4\t4\t0\t1\t1\t1\n", 2, "start (x 4, y 0) is outside");
  expect_parse_error(read, p, v + "\n0\tm.map\t4\t4\t0\t0\t1\t-1\t1\n", 3, "goal (x 1, y -1) is outside");
  CHECK_THROWS_AS(read_movingai_scen(tmp_path("missing.scen")), IoError);
}

TEST_CASE("resolve_scen_map finds the map next to the .scen file", "[map_io]") {
  const std::string scen = tmp_path("resolve.map.scen");
  CHECK(resolve_scen_map(scen, "maps/dao/arena.map") == tmp_path("arena.map"));
  write_raw(tmp_path("here.map"), "x");
  CHECK(resolve_scen_map(scen, "here.map") == tmp_path("here.map"));
  CHECK(resolve_scen_map(scen, "/abs/m.map") == "/abs/m.map");
}

TEST_CASE("text maps: inline strings, markers, round trip, errors", "[map_io]") {
  const TextMap m = parse_text_map(R"(
    ; a comment
    S..#
    .#.G
  )", "inline");
  REQUIRE(m.grid.width() == 4);
  REQUIRE(m.grid.height() == 2);
  REQUIRE(m.start);
  REQUIRE(m.goal);
  CHECK(*m.start == Pos{0, 0});
  CHECK(*m.goal == Pos{1, 3});
  CHECK(m.grid.blocked({0, 3}));
  CHECK(m.grid.blocked({1, 1}));
  CHECK(m.grid.count_blocked() == 2);
  CHECK_FALSE(m.grid.blocked(*m.start));
  CHECK_FALSE(parse_text_map("..\n").start);

  const std::string text = format_text_map(m.grid, m.start, m.goal);
  CHECK(text == "S..#\n.#.G\n");
  const Grid r = random_grid(5, 19, 11, 0.35);
  const TextMap back = parse_text_map(format_text_map(r));
  CHECK(back.grid == r);
  const std::string path = tmp_path("round.txt");
  write_text_map(path, m.grid, m.start, m.goal);
  const TextMap f = read_text_map(path);
  CHECK(f.grid == m.grid);
  CHECK(f.start == m.start);
  CHECK(f.goal == m.goal);
  CHECK_THROWS_AS(format_text_map(m.grid, Pos{0, 3}), InvalidArgument);  // start on a wall

  const std::string p = tmp_path("bad.txt");
  const auto read = [](const std::string& file) { return read_text_map(file); };
  expect_parse_error(read, p, "...\n..\n", 2, "row of 3 cells");
  expect_parse_error(read, p, "..\n.x\n", 2, "unexpected character 'x' at column 2");
  expect_parse_error(read, p, "S.\n.S\n", 2, "a second 'S'");
  expect_parse_error(read, p, "GG\n", 1, "a second 'G'");
  expect_parse_error(read, p, "\n; only a comment\n", 3, "at least one map row");
  CHECK_THROWS_WITH(parse_text_map("..\n.@\n"), Catch::StartsWith("<string>:2: "));
  std::istringstream in("S#\n.G\n");
  const TextMap s = read_text_map(in, "mem");
  CHECK(s.grid.count_blocked() == 1);
  CHECK(*s.goal == Pos{1, 1});
}

TEST_CASE("writes are atomic: no temporary file is left behind", "[map_io]") {
  const fs::path dir = fs::path(tmp_path("atomic")).parent_path() / "atomic_dir";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "m.map").string();
  write_raw(path, "old contents");
  for (int i = 0; i < 5; ++i) write_movingai_map(path, random_grid(static_cast<std::uint64_t>(i), 9, 9, 0.2));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    CHECK(e.path().filename() == "m.map");
  }
  CHECK(files == 1);
  CHECK(read_movingai_map(path) == random_grid(4, 9, 9, 0.2));
  // Writing into a missing folder is an IoError, not a crash or a partial file.
  CHECK_THROWS_AS(write_movingai_map((dir / "no" / "such" / "m.map").string(), Grid(2, 2)), IoError);
}

TEST_CASE("the real Moving AI files load with the counts of SOURCE.md", "[map_io][movingai]") {
  struct Expect {
    const char* name;
    int width, height, blocked;
    std::size_t problems;
    int bucket_lo, bucket_hi;
  };
  // Blocked = '@' + 'O' + 'T' counts from SOURCE.md.
  const Expect files[] = {
      {"arena", 49, 49, 347, 160, 0, 15},
      {"maze512-1-0", 512, 512, 131073, 11960, 1, 1196},
      {"random512-10-0", 512, 512, 26214 + 30, 1670, 1, 167},
      {"8room_000", 512, 512, 54913 + 589, 1940, 1, 194},
  };
  for (const auto& e : files) {
    INFO(e.name);
    const std::string scen = std::string(NANONAV_MOVINGAI_DIR) + "/" + e.name + ".map.scen";
    std::vector<ScenProblem> ps;
    REQUIRE_NOTHROW(ps = read_movingai_scen(scen));  // missing data is a failure
    CHECK(ps.size() == e.problems);
    const auto [lo, hi] = std::minmax_element(ps.begin(), ps.end(), [](const auto& a, const auto& b) {
      return a.bucket < b.bucket;
    });
    CHECK(lo->bucket == e.bucket_lo);
    CHECK(hi->bucket == e.bucket_hi);
    const std::string map_path = resolve_scen_map(scen, ps.front().map);
    CHECK(map_path == std::string(NANONAV_MOVINGAI_DIR) + "/" + e.name + ".map");
    Grid g;
    REQUIRE_NOTHROW(g = read_movingai_map(map_path));
    CHECK(g.width() == e.width);
    CHECK(g.height() == e.height);
    CHECK(g.count_blocked() == e.blocked);
    for (const auto& p : ps) {
      CHECK(p.width == e.width);
      CHECK(p.height == e.height);
    }
    int blocked_endpoints = 0;
    for (const auto& p : ps) blocked_endpoints += g.blocked(p.start) + g.blocked(p.goal);
    CHECK(blocked_endpoints == 0);
    // Writing and reading back keeps every cell.
    CHECK(parse_movingai_map(format_movingai_map(g)) == g);
  }
}
