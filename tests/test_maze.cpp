#include <catch2/catch.hpp>

#include <nanonav/maze.hpp>

using namespace nanonav;

TEST_CASE("perfect_maze yields a tree of free cells, the same for the same seed", "[maze]") {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Rng a(seed), b(seed);
    const Grid g = perfect_maze(20, 20, a);
    CHECK(is_perfect_maze(g));
    CHECK(g == perfect_maze(20, 20, b));
    // 10x10 rooms joined by 99 passages; (odd, odd) cells and the last row/column are walls.
    CHECK(g.cells() - g.count_blocked() == 100 + 99);
    CHECK(g.blocked({1, 1}));
    for (int i = 0; i < 20; ++i) CHECK((g.blocked({19, i}) && g.blocked({i, 19})));
  }
  Rng r(7);
  CHECK(is_perfect_maze(perfect_maze(7, 5, r)));  // odd sizes use the whole grid
  CHECK_THROWS_AS(perfect_maze(1, 5, r), InvalidArgument);
}

TEST_CASE("is_perfect_maze rejects cycles, islands and empty grids", "[maze]") {
  Grid open(3, 3);
  CHECK_FALSE(is_perfect_maze(open));  // a 2x2 block of free cells is a cycle
  Grid islands(3, 1);
  islands.set_blocked({0, 1}, true);
  CHECK_FALSE(is_perfect_maze(islands));
  Grid line(3, 1);
  CHECK(is_perfect_maze(line));
  Grid full(2, 2);
  for (int i = 0; i < 4; ++i) full.set_blocked(full.pos(static_cast<std::size_t>(i)), true);
  CHECK_FALSE(is_perfect_maze(full));
}

TEST_CASE("a perfect maze has exactly one path: removing any path cell disconnects it", "[maze]") {
  for (std::uint64_t i = 0; i < 10; ++i) {
    const MazeProblem mp = random_maze_problem(MazeKind::Perfect, 20, 20, 42, i, 0.3, 10);
    REQUIRE(mp.path.size() >= 10);
    CHECK(mp.path.front() == mp.problem.start);
    CHECK(mp.path.back() == mp.problem.goal);
    for (std::size_t k = 1; k + 1 < mp.path.size(); k += 3) {
      Grid cut = mp.problem.grid;
      cut.set_blocked(mp.path[k], true);
      CHECK_FALSE(astar(cut, mp.problem.start, mp.problem.goal).found);
    }
  }
}

TEST_CASE("random-wall maze problems are solvable and reproducible", "[maze]") {
  for (std::uint64_t i = 0; i < 10; ++i) {
    const MazeProblem a = random_maze_problem(MazeKind::RandomWalls, 20, 20, 3, i, 0.3, 5);
    const MazeProblem b = random_maze_problem(MazeKind::RandomWalls, 20, 20, 3, i, 0.3, 5);
    CHECK(a.problem.grid == b.problem.grid);
    CHECK(a.path == b.path);
    CHECK(a.path.size() >= 5);
    CHECK(check_path(a.problem, a.path, static_cast<int>(a.path.size())).optimal);
  }
}

TEST_CASE("maze tokens follow the notebook's numbering", "[maze]") {
  CHECK(maze_vocab(20, 20) == 405);
  CHECK(cell_token({0, 0}, 20) == 5);
  CHECK(cell_token({19, 19}, 20) == 404);
  CHECK(token_cell(cell_token({3, 17}, 20), 20) == Pos{3, 17});
  CHECK_FALSE(is_cell_token(4, 20, 20));
  CHECK(is_cell_token(404, 20, 20));
  CHECK_FALSE(is_cell_token(405, 20, 20));

  Problem p{Grid(3, 2), {0, 0}, {1, 2}};
  p.grid.set_blocked({0, 1}, true);
  const std::vector<int> layout = maze_layout_tokens(p);
  CHECK(layout == std::vector<int>{2, 0, 1, 1, 1, 3});
  const std::vector<Pos> path{{0, 0}, {1, 0}, {1, 1}, {1, 2}};
  const std::vector<int> seq = maze_sequence(p, path);
  CHECK(seq == std::vector<int>{2, 0, 1, 1, 1, 3, 4, 5, 8, 9, 10});
  CHECK(seq[static_cast<std::size_t>(maze_loss_begin(3, 2))] == maze_token::kSep);
  CHECK_THROWS_AS(maze_sequence(p, {{2, 0}}), InvalidArgument);
}

TEST_CASE("check_path tells valid, optimal and broken paths apart", "[maze]") {
  Problem p{Grid(3, 3), {0, 0}, {0, 2}};
  p.grid.set_blocked({0, 1}, true);
  const std::vector<Pos> best{{0, 0}, {1, 0}, {1, 1}, {1, 2}, {0, 2}};
  PathCheck c = check_path(p, best, 5);
  CHECK(c.valid);
  CHECK(c.optimal);
  CHECK(c.reason.empty());
  const std::vector<Pos> detour{{0, 0}, {1, 0}, {2, 0}, {2, 1}, {1, 1}, {1, 2}, {0, 2}};
  c = check_path(p, detour, 5);
  CHECK(c.valid);
  CHECK_FALSE(c.optimal);
  CHECK(c.length == 7);
  CHECK_FALSE(check_path(p, {{0, 0}, {0, 1}, {0, 2}}, 5).valid);          // wall
  CHECK_FALSE(check_path(p, {{0, 0}, {1, 1}, {1, 2}, {0, 2}}, 5).valid);  // diagonal
  CHECK_FALSE(check_path(p, {{0, 0}, {1, 0}, {1, 1}}, 5).valid);          // stops short
  CHECK_FALSE(check_path(p, {{1, 0}, {1, 1}, {1, 2}, {0, 2}}, 5).valid);  // wrong start
  CHECK_FALSE(check_path(p, {}, 5).valid);
  CHECK_FALSE(check_path(p, {{0, 0}, {0, -1}}, 5).valid);                 // off the map
}
