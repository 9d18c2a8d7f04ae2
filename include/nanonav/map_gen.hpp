#pragma once
/// Random solvable maps: a seed gives the same grid, start and goal on every platform.
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "astar.hpp"
#include "detail/rng.hpp"
#include "grid.hpp"

namespace nanonav {

/// A navigation problem: a map, a start and a goal (start != goal, goal reachable).
struct Problem {
  Grid grid;
  Pos start;
  Pos goal;
};

/// Draws a random solvable problem from `rng`. Exactly round(density * W * H) cells are
/// blocked (a uniformly random subset, by a partial Fisher-Yates shuffle); start and goal are
/// distinct free cells drawn uniformly; maps whose goal is unreachable from the start are
/// drawn again. Throws InvalidArgument for a size < 1x2 / 2x1, a density outside [0, 1) or
/// one that leaves fewer than 2 free cells, or if no solvable map turns up in 10000 draws.
inline Problem random_problem(int width, int height, double density, Rng& rng) {
  if (width <= 0 || height <= 0 || width * height < 2)
    throw InvalidArgument("random_problem: the map needs at least 2 cells, got " +
                          std::to_string(width) + "x" + std::to_string(height));
  if (!(density >= 0.0 && density < 1.0))
    throw InvalidArgument("random_problem: obstacle density must be in [0, 1), got " +
                          std::to_string(density));
  const int cells = width * height;
  const int blocked = static_cast<int>(std::lround(density * cells));
  if (cells - blocked < 2)
    throw InvalidArgument("random_problem: density " + std::to_string(density) +
                          " leaves fewer than 2 free cells on a " + std::to_string(width) + "x" +
                          std::to_string(height) + " map");
  std::vector<int> order(static_cast<std::size_t>(cells));
  std::vector<std::int32_t> dist;
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::iota(order.begin(), order.end(), 0);
    // Partial Fisher-Yates: order[0..blocked) become obstacles, order[blocked..) stay free.
    for (int i = 0; i < blocked; ++i) {
      const int j = i + static_cast<int>(rng.below(static_cast<std::uint64_t>(cells - i)));
      std::swap(order[i], order[j]);
    }
    Problem p{Grid(width, height), {}, {}};
    for (int i = 0; i < blocked; ++i) p.grid.set_blocked(p.grid.pos(order[i]), true);
    const int free_count = cells - blocked;
    const int s = static_cast<int>(rng.below(static_cast<std::uint64_t>(free_count)));
    int g = static_cast<int>(rng.below(static_cast<std::uint64_t>(free_count - 1)));
    if (g >= s) ++g;
    p.start = p.grid.pos(order[blocked + s]);
    p.goal = p.grid.pos(order[blocked + g]);
    goal_distances(p.grid, p.goal, dist);
    if (dist[p.grid.index(p.start)] > 0) return p;
  }
  throw InvalidArgument("random_problem: no solvable map in 10000 draws at density " +
                        std::to_string(density));
}

/// The problem for (seed, index): map `index` of a dataset drawn with `seed`. Independent of
/// the order in which indices are generated, so datasets can be built in parallel.
inline Problem random_problem(int width, int height, double density, std::uint64_t seed,
                              std::uint64_t index = 0) {
  Rng rng = Rng::stream(seed, index);
  return random_problem(width, height, density, rng);
}

}  // namespace nanonav
