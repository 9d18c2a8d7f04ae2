#pragma once
/// A* on grids: the teacher (4-connected, Manhattan) and the yardstick (8-connected, octile,
/// no corner cutting, as in the Moving AI benchmarks), plus the reverse search that labels
/// every cell with its optimal actions.
///
/// Tie-breaking (deterministic): among open nodes of equal f = g + h, the one with the larger
/// g is expanded first; remaining ties go to the node whose g was set (pushed or lowered) last.
/// Neighbours are generated in the order Up, Down, Left, Right, then Up-Left, Up-Right,
/// Down-Left, Down-Right; a neighbour's parent changes only on a strictly smaller g.
/// 4-connected results (paths and expansion counts) are identical to those of the first,
/// simple implementation (commit 870ba02; compared on 20000 random maps), so teacher datasets
/// did not change. 8-connected searches may pick another path of the same cost: that version
/// compared rounded floating-point sums, which break exact ties arbitrarily.
///
/// How it is fast:
/// - prepare() turns the map into one byte per cell holding the legal moves (bit m = move m in
///   the order above; a diagonal needs both orthogonal cells free). The inner loop visits only
///   legal moves, with no bounds or obstacle checks, on flat row-major arrays.
/// - Per-cell state is one 8-byte g (2 MB for 512x512), "unseen" = all ones. A search resets
///   only the cells it touched, on the way out, so nothing is cleared per query and no stamp
///   or closed flag is read: a closed cell's g is already optimal, so the one test
///   `new g < g` rejects closed and worse cells alike (consistent heuristic, exact costs).
/// - The move back to a cell's parent is never generated (its target is closed).
/// - The open list is an indexed binary heap with decrease-key (no stale entries).
/// - Costs are exact integers (below), so keys are single 64-bit compares.
///
/// Exact costs: a path with a straight and b diagonal moves costs a + b*sqrt(2). The search
/// uses the integer a*2^k + b*D with D = round(sqrt(2)*2^k), k chosen per map as large as fits
/// in 63 bits (k = 43 for 512x512, about 50 for 49x49). Integer sums have no rounding, so equal
/// true costs give equal keys. Distinct costs x + y*sqrt(2) != 0 satisfy
/// |x + y*sqrt(2)| >= 1 / (|x| + sqrt(2)|y|) (because |x^2 - 2y^2| >= 1), while the scaled
/// error is at most |y| * 2^-(k+1); so the order of any two path costs (and of any two f
/// values) is exact whenever 2.5 * M^2 < 2^(k+1), M = cells + width + height: every map up to
/// about one million cells (1000x1000). On larger maps a path may exceed the optimum by at most
/// M * 2^-(k+1) (about 2e-5 at ten million cells). 4-connected costs are exact on any map.
/// The reported cost is computed from the path's move counts as a + b * sqrt(2) in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
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
  std::size_t expansions = 0;   ///< nodes taken off the open list and expanded (not the goal)
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

inline int count_trailing_zeros(unsigned x) noexcept {
  NANONAV_ASSERT(x != 0);
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctz(x);
#else
  int n = 0;
  while (!(x & 1u)) { x >>= 1; ++n; }
  return n;
#endif
}
}  // namespace detail

/// A reusable A* workspace.
///
/// Two ways to use it:
/// - `search(map, start, goal, conn)`: prepares `map` (O(cells), one byte a cell) and searches.
///   Always correct, even if the caller changed the map's bytes since the last call.
/// - `prepare(map)` once, then `search(start, goal, conn)` many times: for many queries on one
///   map (the benchmark does this). The workspace keeps its own copy of the map, so later
///   changes to the caller's buffer are not seen until prepare() is called again.
/// After the first query on a map of a given size, neither prepare() nor search() allocates
/// (the result's path vector keeps its capacity too when the same SearchResult is passed in).
/// Not thread-safe: use one workspace per thread.
class AStar {
 public:
  /// Copies `g` into the workspace as a table of legal moves. Throws InvalidArgument for a
  /// map of 2^30 cells or more.
  void prepare(const GridView& g) {
    NANONAV_ASSERT(g.data != nullptr && g.width > 0 && g.height > 0);
    const std::size_t w = static_cast<std::size_t>(g.width), h = static_cast<std::size_t>(g.height);
    if (w * h >= (std::size_t{1} << 30))
      throw InvalidArgument("AStar: a map of " + std::to_string(g.width) + "x" +
                            std::to_string(g.height) + " cells is too large (limit 2^30 cells)");
    width_ = g.width;
    height_ = g.height;
    const std::size_t n = w * h;
    // Normalised copy (for endpoint checks and error messages) and a padded copy (a border of
    // blocked cells, so the move table below needs no bounds checks).
    map_.resize(n);
    const std::size_t pw = w + 2;
    pad_.assign(pw * (h + 2), 1);
    for (std::size_t r = 0; r < h; ++r) {
      const std::uint8_t* src = g.data + static_cast<std::ptrdiff_t>(r) * g.stride;
      std::uint8_t* dst = map_.data() + r * w;
      std::uint8_t* pdst = pad_.data() + (r + 1) * pw + 1;
      for (std::size_t c = 0; c < w; ++c) {
        const std::uint8_t b = src[c] >= g.lethal ? 1 : 0;
        dst[c] = b;
        pdst[c] = b;
      }
    }
    moves_.resize(n);
    for (std::size_t r = 0; r < h; ++r) {
      const std::uint8_t* up = pad_.data() + r * pw + 1;
      const std::uint8_t* mid = up + pw;
      const std::uint8_t* down = mid + pw;
      std::uint8_t* out = moves_.data() + r * w;
      for (std::size_t c = 0; c < w; ++c) {
        const unsigned fu = !up[c], fd = !down[c], fl = !mid[c - 1], fr = !mid[c + 1];
        unsigned m = fu | fd << 1 | fl << 2 | fr << 3;
        m |= (fu & fl & !up[c - 1]) << 4 | (fu & fr & !up[c + 1]) << 5 |
             (fd & fl & !down[c - 1]) << 6 | (fd & fr & !down[c + 1]) << 7;
        out[c] = mid[c] ? 0 : static_cast<std::uint8_t>(m);
      }
    }
    const std::ptrdiff_t iw = static_cast<std::ptrdiff_t>(w);
    const std::ptrdiff_t off[8] = {-iw, iw, -1, 1, -iw - 1, -iw + 1, iw - 1, iw + 1};
    std::copy(off, off + 8, offset_);
    // Scale 2^k: the largest f is below 1.5 * (cells + width + height) steps.
    const double fmax = 1.5 * static_cast<double>(n + w + h + 2);
    int k = 0;
    while (k < 60 && std::ldexp(fmax, k + 1) < 0x1.0p62) ++k;
    shift_ = k;
    straight_ = std::uint64_t{1} << k;
    constexpr std::uint64_t kSqrt2Q62 = 0x5A827999FCEF3242ull;  // floor(sqrt(2) * 2^62)
    diagonal_ = (kSqrt2Q62 + (std::uint64_t{1} << (61 - k))) >> (62 - k);
    if (g_.size() != n) {
      g_.assign(n, kUnseen);
      slot_.assign(n, 0);
      parent_move_.assign(n, 0);
      dirty_ = false;
    }
  }

  /// True once prepare() (or a search with a map) has been called.
  bool prepared() const noexcept { return width_ > 0; }
  int width() const noexcept { return width_; }
  int height() const noexcept { return height_; }
  /// The prepared map (0 free, 1 blocked). Only valid while prepared().
  GridView map() const {
    NANONAV_ASSERT(prepared());
    return GridView(map_.data(), width_, height_, width_, 1);
  }
  /// The scale 2^k of the integer costs (see the header comment); for tests.
  int cost_shift() const noexcept { return shift_; }

  /// Searches the prepared map from start to goal (prepare() must have been called: asserted).
  /// Throws SearchError if start or goal is outside or blocked.
  void search(Pos start, Pos goal, Connectivity conn, SearchResult& out) {
    const GridView g = map();
    detail::check_endpoint(g, start, "start");
    detail::check_endpoint(g, goal, "goal");
    out.found = false;
    out.path.clear();
    out.cost = 0.0;
    out.expansions = 0;
    if (dirty_) std::fill(g_.begin(), g_.end(), kUnseen);  // a previous search threw
    dirty_ = true;
    heap_.clear();
    touched_.clear();
    order_ = 0;
    const bool eight = conn == Connectivity::Eight;
    const unsigned move_mask = eight ? 0xFFu : 0x0Fu;
    const int w = width_;
    const int gi = goal.row * w + goal.col;
    const std::uint64_t S = straight_, D = diagonal_;
    const auto heuristic = [&](int row, int col) -> std::uint64_t {
      const int dr = std::abs(row - goal.row), dc = std::abs(col - goal.col);
      if (!eight) return static_cast<std::uint64_t>(dr + dc) * S;
      const int lo = dr < dc ? dr : dc, hi = dr < dc ? dc : dr;
      return static_cast<std::uint64_t>(hi - lo) * S + static_cast<std::uint64_t>(lo) * D;
    };
    static constexpr int kDr[8] = {-1, 1, 0, 0, -1, -1, 1, 1};
    static constexpr int kDc[8] = {0, 0, -1, 1, -1, 1, -1, 1};
    static constexpr std::uint8_t kReverse[8] = {1, 0, 3, 2, 7, 6, 5, 4};

    const int si = start.row * w + start.col;
    std::uint64_t* const gv = g_.data();
    std::uint8_t* const parent = parent_move_.data();
    const std::uint8_t* const moves = moves_.data();
    gv[si] = 0;
    touched_.push_back(static_cast<std::uint32_t>(si));
    push({heuristic(start.row, start.col), 0, order_++, static_cast<std::uint32_t>(si)});
    while (!heap_.empty()) {
      const Entry cur = pop();
      const int ci = static_cast<int>(cur.node);
      if (ci == gi) {
        finish(start, goal, out);
        break;
      }
      ++out.expansions;
      if (expansion_log_) expansion_log_->push_back(Pos{ci / w, ci % w});
      const int row = ci / w, col = ci - row * w;
      unsigned m = moves[ci] & move_mask;
      // The move back to the parent leads to a closed cell: skip it without touching memory.
      if (ci != si) m &= ~(1u << kReverse[parent[ci]]);
      while (m != 0) {
        const int k = detail::count_trailing_zeros(m);
        m &= m - 1;
        const int qi = ci + static_cast<int>(offset_[k]);
        const std::uint64_t ng = cur.g + (k < 4 ? S : D);
        // Closed cells never pass this test: their g is optimal (consistent heuristic, exact
        // integer costs), so no separate closed flag is needed.
        const std::uint64_t old = gv[qi];
        if (ng >= old) continue;
        gv[qi] = ng;
        parent[qi] = static_cast<std::uint8_t>(k);
        if (old == kUnseen) {
          touched_.push_back(static_cast<std::uint32_t>(qi));
          push({ng + heuristic(row + kDr[k], col + kDc[k]), ng, order_++,
                static_cast<std::uint32_t>(qi)});
        } else {
          const std::uint32_t slot = slot_[static_cast<std::size_t>(qi)];
          Entry& e = heap_[slot];
          e.f = e.f - e.g + ng;
          e.g = ng;
          e.order = order_++;
          sift_up(slot);
        }
      }
    }
    for (const std::uint32_t i : touched_) gv[i] = kUnseen;
    dirty_ = false;
  }

  SearchResult search(Pos start, Pos goal, Connectivity conn = Connectivity::Four) {
    SearchResult r;
    search(start, goal, conn, r);
    return r;
  }

  /// prepare(g) then search(start, goal, conn, out).
  void search(const GridView& g, Pos start, Pos goal, Connectivity conn, SearchResult& out) {
    prepare(g);
    search(start, goal, conn, out);
  }

  SearchResult search(const GridView& g, Pos start, Pos goal,
                      Connectivity conn = Connectivity::Four) {
    SearchResult r;
    search(g, start, goal, conn, r);
    return r;
  }

  /// When `log` is not null, every later search appends the cells it expands, in order (for
  /// pictures and teaching; costs one well-predicted branch per expansion when null).
  void set_expansion_log(std::vector<Pos>* log) noexcept { expansion_log_ = log; }

 private:
  static constexpr std::uint64_t kUnseen = std::numeric_limits<std::uint64_t>::max();
  struct Entry {
    std::uint64_t f, g;
    std::uint32_t order;  // larger = g set more recently
    std::uint32_t node;
  };
  // True when a is to be expanded before b.
  static bool before(const Entry& a, const Entry& b) noexcept {
    if (a.f != b.f) return a.f < b.f;
    if (a.g != b.g) return a.g > b.g;
    return a.order > b.order;
  }
  void push(const Entry& e) {
    heap_.push_back(e);
    sift_up(static_cast<std::uint32_t>(heap_.size() - 1));
  }
  void sift_up(std::uint32_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const std::uint32_t parent = (i - 1) / 2;
      if (!before(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      slot_[heap_[i].node] = i;
      i = parent;
    }
    heap_[i] = e;
    slot_[e.node] = i;
  }
  Entry pop() {
    const Entry top = heap_.front();
    const Entry last = heap_.back();
    heap_.pop_back();
    const std::uint32_t n = static_cast<std::uint32_t>(heap_.size());
    if (n > 0) {
      std::uint32_t i = 0;
      while (true) {
        std::uint32_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
        if (!before(heap_[child], last)) break;
        heap_[i] = heap_[child];
        slot_[heap_[i].node] = i;
        i = child;
      }
      heap_[i] = last;
      slot_[last.node] = i;
    }
    return top;
  }
  void finish(Pos start, Pos goal, SearchResult& out) {
    const int w = width_;
    const int si = start.row * w + start.col;
    std::size_t diagonal = 0, straight = 0;
    for (int i = goal.row * w + goal.col;; ) {
      out.path.push_back({i / w, i % w});
      if (i == si) break;
      const int k = parent_move_[static_cast<std::size_t>(i)];
      (k < 4 ? straight : diagonal) += 1;
      i -= static_cast<int>(offset_[k]);
    }
    std::reverse(out.path.begin(), out.path.end());
    out.found = true;
    out.cost = static_cast<double>(straight) + static_cast<double>(diagonal) * kSqrt2;
  }

  int width_ = 0, height_ = 0;
  std::vector<std::uint8_t> map_, pad_, moves_, parent_move_;
  std::vector<std::uint64_t> g_;       // scaled cost, kUnseen outside a search
  std::vector<Pos>* expansion_log_ = nullptr;
  std::vector<std::uint32_t> slot_;    // heap slot of an open cell
  std::vector<std::uint32_t> touched_; // cells whose g this search set (reset at the end)
  std::vector<Entry> heap_;
  std::ptrdiff_t offset_[8] = {};
  std::uint64_t straight_ = 1, diagonal_ = 1;
  int shift_ = 0;
  std::uint32_t order_ = 0;
  bool dirty_ = false;
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
