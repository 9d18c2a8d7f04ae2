#include <catch2/catch.hpp>

#include <nanonav/map_gen.hpp>
#include <nanonav/map_io.hpp>

#include <cmath>
#include <string>

using namespace nanonav;

namespace {
std::string picture(const Problem& p) { return format_text_map(p.grid, p.start, p.goal); }
}  // namespace

// These pictures were recorded from this implementation (SplitMix64 + Lemire + partial
// Fisher-Yates). They must be the same on every compiler and platform: if one changes, the
// datasets built from seeds change too.
TEST_CASE("random_problem: recorded maps for fixed seeds", "[map_gen]") {
  CHECK(picture(random_problem(8, 8, 0.3, 42, 0)) ==
        "#......#\n"
        "#...#..#\n"
        "#.#..#..\n"
        "##...#.#\n"
        "........\n"
        "..#..##.\n"
        "...##.S.\n"
        "#..G...#\n");
  CHECK(picture(random_problem(8, 8, 0.3, 42, 1)) ==
        "#.......\n"
        ".S..#.##\n"
        "..#.#...\n"
        ".G#....#\n"
        "..##..##\n"
        "#..##...\n"
        "....###.\n"
        "#.......\n");
  CHECK(picture(random_problem(12, 5, 0.2, 7, 3)) ==
        ".#...#....#.\n"
        "......#.#.#.\n"
        ".#...#......\n"
        "....G...#...\n"
        "S...#.#...#.\n");
  // Drawing from one generator: consecutive problems follow the stream.
  Rng rng(5);
  CHECK(picture(random_problem(6, 4, 0.25, rng)) == "..#..#\n.#.#..\n#.G...\n#....S\n");
  CHECK(picture(random_problem(6, 4, 0.25, rng)) == "....G#\n....##\n.##...\n...#.S\n");
}

TEST_CASE("random_problem: same seed and index give the same problem", "[map_gen]") {
  for (std::uint64_t i = 0; i < 20; ++i) {
    const Problem a = random_problem(16, 9, 0.3, 123, i);
    const Problem b = random_problem(16, 9, 0.3, 123, i);
    CHECK(a.grid == b.grid);
    CHECK(a.start == b.start);
    CHECK(a.goal == b.goal);
  }
  // ... and different indices or seeds give different maps (a repeat is astronomically rare).
  CHECK(random_problem(16, 9, 0.3, 123, 0).grid != random_problem(16, 9, 0.3, 123, 1).grid);
  CHECK(random_problem(16, 9, 0.3, 123, 0).grid != random_problem(16, 9, 0.3, 124, 0).grid);
}

TEST_CASE("random_problem: start != goal, both free, goal reachable, exact obstacle count",
          "[map_gen]") {
  std::vector<std::int32_t> dist;
  AStar ws;
  int problems = 0;
  for (const int size : {2, 3, 8, 13, 32}) {
    for (const double density : {0.0, 0.1, 0.25, 0.4}) {
      for (std::uint64_t i = 0; i < 25; ++i) {
        const int w = size, h = size == 2 ? 1 : size;  // includes a 2x1 map
        if (w * h - std::lround(density * w * h) < 2) continue;
        const Problem p = random_problem(w, h, density, 77, i);
        INFO(w << "x" << h << " density " << density << " index " << i << "\n" << picture(p));
        REQUIRE(p.grid.width() == w);
        REQUIRE(p.grid.height() == h);
        CHECK(p.start != p.goal);
        CHECK(p.grid.is_free(p.start));
        CHECK(p.grid.is_free(p.goal));
        CHECK(p.grid.count_blocked() == static_cast<int>(std::lround(density * w * h)));
        goal_distances(p.grid, p.goal, dist);
        CHECK(dist[p.grid.index(p.start)] > 0);
        CHECK(ws.search(p.grid, p.start, p.goal).found);
        ++problems;
      }
    }
  }
  CHECK(problems > 400);
}

TEST_CASE("random_problem: bad arguments throw InvalidArgument", "[map_gen]") {
  Rng rng(1);
  CHECK_THROWS_AS(random_problem(0, 5, 0.1, rng), InvalidArgument);
  CHECK_THROWS_AS(random_problem(5, -1, 0.1, rng), InvalidArgument);
  CHECK_THROWS_AS(random_problem(1, 1, 0.0, rng), InvalidArgument);  // fewer than 2 cells
  CHECK_THROWS_AS(random_problem(5, 5, -0.1, rng), InvalidArgument);
  CHECK_THROWS_AS(random_problem(5, 5, 1.0, rng), InvalidArgument);
  CHECK_THROWS_AS(random_problem(5, 5, std::nan(""), rng), InvalidArgument);
  CHECK_THROWS_AS(random_problem(2, 2, 0.75, rng), InvalidArgument);  // leaves 1 free cell
  CHECK_THROWS_AS(random_problem(4, 4, 0.95, 3, 0), InvalidArgument);
}
