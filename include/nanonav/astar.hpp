#pragma once
/// A* on grids: the teacher (4-connected, Manhattan) and the yardstick (8-connected, octile,
/// no corner cutting, as in the Moving AI benchmarks), plus the reverse search that labels
/// every cell with its optimal actions.
///
/// Tie-breaking (deterministic): among open nodes of equal f = g + h, the one with the larger
/// g is expanded first; remaining ties go to the node pushed last. Neighbours are generated
/// in the order Up, Down, Left, Right, then Up-Left, Up-Right, Down-Left, Down-Right.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "errors.hpp"
#include "grid.hpp"

namespace nanonav {

enum class Connectivity : std::uint8_t { Four = 4, Eight = 8 };

inline constexpr double kSqrt2 = 1.41421356237309504880;

/// What a search found. No path is a normal result: found == false, path empty.
struct SearchResult {
  bool found = false;
  std::vector<Pos> path;        ///< start ... goal inclusive (empty if not found)
  double cost = 0.0;            ///< sum of step costs: 1 straight, sqrt(2) diagonal
  std::size_t expansions = 0;   ///< nodes taken off the open list and expanded
};

/// Thrown when start or goal are outside the map or blocked.
class SearchError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

namespace detail {
inline void check_endpoint(const GridView& g, Pos p, const char* which) {
  if (!g.in_bounds(p))
    throw SearchError(std::string("A*: ") + which + " (" + std::to_string(p.row) + "," +
                      std::to_string(p.col) + ") is outside the " + std::to_string(g.width) + "x" +
                      std::to_string(g.height) + " map");
  if (g.blocked(p))
    throw SearchError(std::string("A*: ") + which + " (" + std::to_string(p.row) + "," +
                      std::to_string(p.col) + ") is a blocked cell");
}
}  // namespace detail

/// A reusable A* workspace: after the first query on a map of a given size, queries do not
/// allocate (the result's path vector keeps its capacity too when passed back in).
class AStar {
 public:
  /// Searches from start to goal. Throws SearchError if either is outside or blocked.
  void search(const GridView& g, Pos start, Pos goal, Connectivity conn, SearchResult& out) {
    detail::check_endpoint(g, start, "start");
    detail::check_endpoint(g, goal, "goal");
    out.found = false;
    out.path.clear();
    out.cost = 0.0;
    out.expansions = 0;
    const std::size_t n = static_cast<std::size_t>(g.width) * static_cast<std::size_t>(g.height);
    if (stamp_.size() != n) {
      stamp_.assign(n, 0);
      closed_.assign(n, 0);
      gval_.assign(n, 0.0);
      parent_.assign(n, -1);
      generation_ = 0;
    }
    if (++generation_ == 0) {  // wrapped: clear the stamps once every 2^32 queries
      std::fill(stamp_.begin(), stamp_.end(), 0u);
      std::fill(closed_.begin(), closed_.end(), 0u);
      generation_ = 1;
    }
    heap_.clear();
    const auto idx = [&](Pos p) { return p.row * g.width + p.col; };
    const auto h = [&](Pos p) {
      const int dr = std::abs(p.row - goal.row), dc = std::abs(p.col - goal.col);
      if (conn == Connectivity::Four) return static_cast<double>(dr + dc);
      const int lo = dr < dc ? dr : dc, hi = dr < dc ? dc : dr;
      return (hi - lo) + kSqrt2 * lo;
    };
    const int s = idx(start);
    stamp_[s] = generation_;
    gval_[s] = 0.0;
    parent_[s] = -1;
    push({h(start), 0.0, counter_ = 0, s});
    static constexpr int kDr[8] = {-1, 1, 0, 0, -1, -1, 1, 1};
    static constexpr int kDc[8] = {0, 0, -1, 1, -1, 1, -1, 1};
    const int nmoves = conn == Connectivity::Four ? 4 : 8;
    const int goal_i = idx(goal);
    while (!heap_.empty()) {
      const Node cur = pop();
      if (closed_[cur.index] == generation_) continue;  // stale entry
      if (cur.g > gval_[cur.index]) continue;
      closed_[cur.index] = generation_;
      if (cur.index == goal_i) {
        out.found = true;
        out.cost = cur.g;
        for (int i = goal_i; i != -1; i = parent_[i]) out.path.push_back({i / g.width, i % g.width});
        std::reverse(out.path.begin(), out.path.end());
        return;
      }
      ++out.expansions;
      const Pos p{cur.index / g.width, cur.index % g.width};
      for (int m = 0; m < nmoves; ++m) {
        const Pos q{p.row + kDr[m], p.col + kDc[m]};
        if (!g.is_free(q)) continue;
        double step_cost = 1.0;
        if (m >= 4) {  // diagonal: both orthogonal cells must be free (no corner cutting)
          if (!g.is_free({p.row + kDr[m], p.col}) || !g.is_free({p.row, p.col + kDc[m]})) continue;
          step_cost = kSqrt2;
        }
        const int qi = idx(q);
        if (closed_[qi] == generation_) continue;
        const double ng = cur.g + step_cost;
        if (stamp_[qi] == generation_ && gval_[qi] <= ng) continue;
        stamp_[qi] = generation_;
        gval_[qi] = ng;
        parent_[qi] = cur.index;
        push({ng + h(q), ng, ++counter_, qi});
      }
    }
  }

  SearchResult search(const GridView& g, Pos start, Pos goal,
                      Connectivity conn = Connectivity::Four) {
    SearchResult r;
    search(g, start, goal, conn, r);
    return r;
  }

 private:
  struct Node {
    double f, g;
    std::uint64_t order;
    int index;
  };
  // True when a should be expanded after b.
  static bool later(const Node& a, const Node& b) noexcept {
    if (a.f != b.f) return a.f > b.f;
    if (a.g != b.g) return a.g < b.g;
    return a.order < b.order;
  }
  void push(const Node& n) {
    heap_.push_back(n);
    std::push_heap(heap_.begin(), heap_.end(), later);
  }
  Node pop() {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Node n = heap_.back();
    heap_.pop_back();
    return n;
  }

  std::vector<std::uint32_t> stamp_, closed_;
  std::vector<double> gval_;
  std::vector<int> parent_;
  std::vector<Node> heap_;
  std::uint32_t generation_ = 0;
  std::uint64_t counter_ = 0;
};

/// One-shot convenience (allocates a workspace): the path from start to goal.
inline SearchResult astar(const GridView& g, Pos start, Pos goal,
                          Connectivity conn = Connectivity::Four) {
  AStar ws;
  return ws.search(g, start, goal, conn);
}

/// 4-connected unit-cost distances from every cell to `goal` (one reverse BFS; the grid is
/// undirected so this is the cost-to-go). dist[row * width + col] = -1 for blocked or
/// unreachable cells. Throws SearchError if goal is outside or blocked.
inline void goal_distances(const GridView& g, Pos goal, std::vector<std::int32_t>& dist) {
  detail::check_endpoint(g, goal, "goal");
  const int n = g.width * g.height;
  dist.assign(static_cast<std::size_t>(n), -1);
  std::vector<int> queue;
  queue.reserve(static_cast<std::size_t>(n));
  const int gi = goal.row * g.width + goal.col;
  dist[gi] = 0;
  queue.push_back(gi);
  for (std::size_t head = 0; head < queue.size(); ++head) {
    const int i = queue[head];
    const Pos p{i / g.width, i % g.width};
    for (int a = 0; a < 4; ++a) {
      const Pos q = step(p, static_cast<Action>(a));
      if (!g.is_free(q)) continue;
      const int qi = q.row * g.width + q.col;
      if (dist[qi] != -1) continue;
      dist[qi] = dist[i] + 1;
      queue.push_back(qi);
    }
  }
}

/// Bit a of the result is set when action a is optimal at p (moves one step closer to the goal
/// under `dist` from goal_distances). At the goal the only optimal action is Stay. Returns 0
/// for a blocked or unreachable p.
inline std::uint8_t optimal_action_mask(const GridView& g, const std::vector<std::int32_t>& dist,
                                        Pos p) {
  if (!g.is_free(p)) return 0;
  const std::int32_t d = dist[static_cast<std::size_t>(p.row * g.width + p.col)];
  if (d < 0) return 0;
  if (d == 0) return static_cast<std::uint8_t>(1u << static_cast<int>(Action::Stay));
  std::uint8_t mask = 0;
  for (int a = 0; a < 4; ++a) {
    const Pos q = step(p, static_cast<Action>(a));
    if (g.is_free(q) && dist[static_cast<std::size_t>(q.row * g.width + q.col)] == d - 1)
      mask = static_cast<std::uint8_t>(mask | (1u << a));
  }
  return mask;
}

}  // namespace nanonav
