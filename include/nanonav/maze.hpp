#pragma once
/// Mazes as token sequences, for the sequence TRM of the notebook seed.
///
/// Tokens (the notebook's vocabulary): 0 wall, 1 free, 2 start, 3 end, 4 separator, and
/// 5 + row * width + col for the path cell (row, col). A training sequence is the width*height
/// layout tokens in row-major order, the separator, then the path from start to goal.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "astar.hpp"
#include "detail/rng.hpp"
#include "errors.hpp"
#include "grid.hpp"
#include "map_gen.hpp"

namespace nanonav {

/// The maze vocabulary (notebook numbering).
namespace maze_token {
inline constexpr int kWall = 0;
inline constexpr int kFree = 1;
inline constexpr int kStart = 2;
inline constexpr int kEnd = 3;
inline constexpr int kSep = 4;
inline constexpr int kCellOffset = 5;  ///< first path-cell token
}  // namespace maze_token

/// Vocabulary size for a width x height maze: 5 specials + one token per cell.
inline constexpr int maze_vocab(int width, int height) noexcept {
  return maze_token::kCellOffset + width * height;
}

/// The path token of cell p.
inline constexpr int cell_token(Pos p, int width) noexcept {
  return maze_token::kCellOffset + p.row * width + p.col;
}

/// True when `token` names a cell of a width x height maze.
inline constexpr bool is_cell_token(int token, int width, int height) noexcept {
  return token >= maze_token::kCellOffset && token < maze_vocab(width, height);
}

/// The cell a path token names (the token must satisfy is_cell_token).
inline Pos token_cell(int token, int width) noexcept {
  NANONAV_ASSERT(token >= maze_token::kCellOffset && width > 0);
  const int i = token - maze_token::kCellOffset;
  return {i / width, i % width};
}

/// A perfect maze (exactly one simple path between any two free cells) by the recursive
/// backtracker, iterative so deep mazes cannot overflow the stack. Rooms sit on even (row,
/// col); the passages between them are the odd cells knocked through; every (odd, odd) cell
/// and, for an even size, the last row or column stay walls. Throws InvalidArgument for a
/// side < 2.
inline Grid perfect_maze(int width, int height, Rng& rng) {
  if (width < 2 || height < 2)
    throw InvalidArgument("perfect_maze: need width and height >= 2, got " +
                          std::to_string(width) + "x" + std::to_string(height));
  Grid g(width, height);
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) g.set_blocked({r, c}, true);
  const int rooms_w = (width + 1) / 2, rooms_h = (height + 1) / 2;
  std::vector<std::uint8_t> seen(static_cast<std::size_t>(rooms_w * rooms_h), 0);
  std::vector<int> stack;
  stack.reserve(seen.size());
  const int first = static_cast<int>(rng.below(seen.size()));
  seen[first] = 1;
  g.set_blocked({2 * (first / rooms_w), 2 * (first % rooms_w)}, false);
  stack.push_back(first);
  static constexpr int kDr[4] = {-1, 1, 0, 0};
  static constexpr int kDc[4] = {0, 0, -1, 1};
  while (!stack.empty()) {
    const int cur = stack.back();
    const int rr = cur / rooms_w, rc = cur % rooms_w;
    int options[4];
    int n = 0;
    for (int m = 0; m < 4; ++m) {
      const int nr = rr + kDr[m], nc = rc + kDc[m];
      if (nr < 0 || nc < 0 || nr >= rooms_h || nc >= rooms_w) continue;
      if (!seen[static_cast<std::size_t>(nr * rooms_w + nc)]) options[n++] = m;
    }
    if (n == 0) {
      stack.pop_back();
      continue;
    }
    const int m = options[rng.below(static_cast<std::uint64_t>(n))];
    const int nr = rr + kDr[m], nc = rc + kDc[m];
    g.set_blocked({2 * rr + kDr[m], 2 * rc + kDc[m]}, false);
    g.set_blocked({2 * nr, 2 * nc}, false);
    seen[static_cast<std::size_t>(nr * rooms_w + nc)] = 1;
    stack.push_back(nr * rooms_w + nc);
  }
  return g;
}

/// True when the free cells of g form one 4-connected tree: at least one free cell, all
/// connected, and no cycle (edges = cells - 1), so the path between two free cells is unique.
inline bool is_perfect_maze(const GridView& g) {
  int cells = 0, edges = 0;
  Pos any{-1, -1};
  for (int r = 0; r < g.height; ++r)
    for (int c = 0; c < g.width; ++c) {
      if (!g.is_free({r, c})) continue;
      ++cells;
      any = {r, c};
      edges += g.is_free({r + 1, c}) + g.is_free({r, c + 1});
    }
  if (cells == 0) return false;
  std::vector<std::int32_t> dist;
  goal_distances(g, any, dist);
  int reached = 0;
  for (auto d : dist) reached += d >= 0;
  return reached == cells && edges == cells - 1;
}

/// The two kinds of training maze.
enum class MazeKind : std::uint8_t {
  Perfect = 0,     ///< recursive backtracker, one path between any two cells
  RandomWalls = 1  ///< random_problem() obstacles (several optimal paths are common)
};

/// A maze problem with its teacher path (4-connected A*, deterministic tie-breaking).
struct MazeProblem {
  Problem problem;
  std::vector<Pos> path;  ///< start ... goal inclusive
};

/// Draws a maze problem. Perfect: start and goal are two distinct free cells drawn uniformly,
/// at least `min_path` cells apart along the path (redrawn otherwise). RandomWalls:
/// random_problem(width, height, density) with the same path-length floor. Throws
/// InvalidArgument when no problem with a path of >= min_path cells turns up in 1000 draws.
inline MazeProblem random_maze_problem(MazeKind kind, int width, int height, Rng& rng,
                                       double density = 0.3, int min_path = 2) {
  AStar astar_ws;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    MazeProblem mp;
    if (kind == MazeKind::Perfect) {
      mp.problem.grid = perfect_maze(width, height, rng);
      std::vector<int> free_cells;
      for (int i = 0; i < mp.problem.grid.cells(); ++i)
        if (mp.problem.grid.data()[i] == 0) free_cells.push_back(i);
      const auto n = static_cast<std::uint64_t>(free_cells.size());
      if (n < 2) continue;
      const auto s = rng.below(n);
      auto gi = rng.below(n - 1);
      if (gi >= s) ++gi;
      mp.problem.start = mp.problem.grid.pos(static_cast<std::size_t>(free_cells[s]));
      mp.problem.goal = mp.problem.grid.pos(static_cast<std::size_t>(free_cells[gi]));
    } else {
      mp.problem = random_problem(width, height, density, rng);
    }
    SearchResult res = astar_ws.search(mp.problem.grid, mp.problem.start, mp.problem.goal);
    if (!res.found || static_cast<int>(res.path.size()) < min_path) continue;
    mp.path = std::move(res.path);
    return mp;
  }
  throw InvalidArgument("random_maze_problem: no maze with a path of >= " +
                        std::to_string(min_path) + " cells in 1000 draws");
}

/// Maze `index` of a set drawn with `seed` (independent of generation order).
inline MazeProblem random_maze_problem(MazeKind kind, int width, int height, std::uint64_t seed,
                                       std::uint64_t index, double density = 0.3,
                                       int min_path = 2) {
  Rng rng = Rng::stream(seed, index);
  return random_maze_problem(kind, width, height, rng, density, min_path);
}

/// The width*height layout tokens, row-major: wall, free, start and end.
inline std::vector<int> maze_layout_tokens(const Problem& p) {
  const Grid& g = p.grid;
  std::vector<int> out(static_cast<std::size_t>(g.cells()));
  for (int r = 0; r < g.height(); ++r)
    for (int c = 0; c < g.width(); ++c)
      out[g.index({r, c})] = g.blocked({r, c}) ? maze_token::kWall : maze_token::kFree;
  out[g.index(p.start)] = maze_token::kStart;
  out[g.index(p.goal)] = maze_token::kEnd;
  return out;
}

/// Layout, separator, then the path tokens. The model reads token t and predicts t + 1, so the
/// targets that matter are the path tokens after the start (see maze_loss_begin()).
inline std::vector<int> maze_sequence(const Problem& p, const std::vector<Pos>& path) {
  std::vector<int> seq = maze_layout_tokens(p);
  seq.push_back(maze_token::kSep);
  for (Pos q : path) {
    if (!p.grid.in_bounds(q))
      throw InvalidArgument("maze_sequence: path cell (" + std::to_string(q.row) + "," +
                            std::to_string(q.col) + ") is outside the maze");
    seq.push_back(cell_token(q, p.grid.width()));
  }
  return seq;
}

/// Index in maze_sequence() of the first prediction that the loss covers: the prediction made
/// while reading the separator (whose target is the start cell), as in the notebook.
inline constexpr int maze_loss_begin(int width, int height) noexcept { return width * height; }

/// How a decoded path measures up.
struct PathCheck {
  bool valid = false;       ///< starts at start, 4-neighbour steps, free cells, ends at goal
  bool optimal = false;     ///< valid and as short as the A* path
  int length = 0;           ///< cells in the decoded path (start and goal included)
  int optimal_length = 0;   ///< cells in the A* path
  std::string reason;       ///< why it is invalid (empty when valid)
};

/// Checks a decoded path against the problem; `optimal_length` is the A* path's cell count.
inline PathCheck check_path(const Problem& p, const std::vector<Pos>& path, int optimal_length) {
  PathCheck pc;
  pc.length = static_cast<int>(path.size());
  pc.optimal_length = optimal_length;
  const auto fail = [&](std::string why) {
    pc.reason = std::move(why);
    return pc;
  };
  if (path.empty()) return fail("empty path");
  if (path.front() != p.start) return fail("does not begin at the start");
  for (std::size_t i = 0; i < path.size(); ++i) {
    const Pos q = path[i];
    if (!p.grid.is_free(q)) return fail("step " + std::to_string(i) + " enters a wall or leaves the map");
    if (i > 0) {
      const int d = std::abs(q.row - path[i - 1].row) + std::abs(q.col - path[i - 1].col);
      if (d != 1) return fail("step " + std::to_string(i) + " is not to a 4-neighbour");
    }
  }
  if (path.back() != p.goal) return fail("does not reach the goal");
  pc.valid = true;
  pc.optimal = pc.length == optimal_length;
  return pc;
}

}  // namespace nanonav
