#include <catch2/catch.hpp>

#include <nanonav/astar.hpp>
#include <nanonav/detail/rng.hpp>
#include <nanonav/map_gen.hpp>
#include <nanonav/map_io.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <queue>
#include <string>
#include <vector>

using namespace nanonav;

// ---- allocation counter: proves that a reused workspace does not allocate ------------------
// Sanitizer runtimes bring their own operator new variants, so the counter (and the two
// zero-allocation checks) is left out of sanitizer builds; everything else still runs there.
#if defined(__SANITIZE_ADDRESS__)
#define NANONAV_TEST_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NANONAV_TEST_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef NANONAV_TEST_COUNT_ALLOCATIONS
#define NANONAV_TEST_COUNT_ALLOCATIONS 1
#endif

namespace {
std::atomic<long> g_allocations{0};
}
#if NANONAV_TEST_COUNT_ALLOCATIONS
#if defined(__GNUC__) && !defined(__clang__)
// The replacement operator new/delete pair below uses malloc/free on purpose.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace {

// ---- an independent reference: Dijkstra with exact costs a + b*sqrt(2) ---------------------
struct ExactCost {
  std::int64_t a = 0, b = 0;  // a straight moves, b diagonal moves
};
// Sign of (p - q) as a real number, exactly: x + y*sqrt(2) with x, y integers.
int compare_exact(ExactCost p, ExactCost q) {
  const std::int64_t x = p.a - q.a, y = p.b - q.b;
  if (x == 0 && y == 0) return 0;
  if (x >= 0 && y >= 0) return 1;
  if (x <= 0 && y <= 0) return -1;
  const std::int64_t xx = x * x, yy2 = 2 * y * y;  // x^2 vs 2y^2 (never equal: sqrt(2) irrational)
  if (x > 0) return xx > yy2 ? 1 : -1;              // x > 0 > y
  return yy2 > xx ? 1 : -1;                         // y > 0 > x
}

bool free_cell(const Grid& g, int r, int c) { return g.is_free({r, c}); }

// Exact optimal cost from start to every cell (plain Dijkstra, no heuristic); reached[i] false
// when unreachable.
void reference_dijkstra(const Grid& g, Pos start, Connectivity conn, std::vector<ExactCost>& cost,
                        std::vector<char>& reached) {
  const int n = g.cells();
  cost.assign(static_cast<std::size_t>(n), ExactCost{});
  reached.assign(static_cast<std::size_t>(n), 0);
  std::vector<char> done(static_cast<std::size_t>(n), 0);
  struct Item {
    ExactCost c;
    int i;
  };
  const auto worse = [](const Item& x, const Item& y) { return compare_exact(x.c, y.c) > 0; };
  std::priority_queue<Item, std::vector<Item>, decltype(worse)> pq(worse);
  const int s = start.row * g.width() + start.col;
  reached[static_cast<std::size_t>(s)] = 1;
  pq.push({{0, 0}, s});
  while (!pq.empty()) {
    const Item it = pq.top();
    pq.pop();
    if (done[static_cast<std::size_t>(it.i)]) continue;
    done[static_cast<std::size_t>(it.i)] = 1;
    const int r = it.i / g.width(), c = it.i % g.width();
    for (int dr = -1; dr <= 1; ++dr)
      for (int dc = -1; dc <= 1; ++dc) {
        if (dr == 0 && dc == 0) continue;
        const bool diag = dr != 0 && dc != 0;
        if (diag && conn == Connectivity::Four) continue;
        if (!free_cell(g, r + dr, c + dc)) continue;
        if (diag && (!free_cell(g, r + dr, c) || !free_cell(g, r, c + dc))) continue;
        const int j = (r + dr) * g.width() + (c + dc);
        ExactCost nc = it.c;
        (diag ? nc.b : nc.a) += 1;
        const auto uj = static_cast<std::size_t>(j);
        if (!reached[uj] || compare_exact(nc, cost[uj]) < 0) {
          reached[uj] = 1;
          cost[uj] = nc;
          pq.push({nc, j});
        }
      }
  }
}

// Checks that a path is a legal walk from start to goal and returns its (a, b) move counts.
ExactCost check_path(const GridView& g, const SearchResult& r, Pos start, Pos goal,
                     Connectivity conn) {
  REQUIRE(r.found);
  REQUIRE_FALSE(r.path.empty());
  CHECK(r.path.front() == start);
  CHECK(r.path.back() == goal);
  ExactCost counts;
  double summed = 0.0;
  for (std::size_t i = 0; i < r.path.size(); ++i) {
    const Pos p = r.path[i];
    REQUIRE(g.is_free(p));
    if (i == 0) continue;
    const Pos q = r.path[i - 1];
    const int dr = p.row - q.row, dc = p.col - q.col;
    REQUIRE(std::abs(dr) <= 1);
    REQUIRE(std::abs(dc) <= 1);
    REQUIRE((dr != 0 || dc != 0));
    if (dr != 0 && dc != 0) {
      REQUIRE(conn == Connectivity::Eight);
      // No corner cutting: both orthogonal cells between q and p are free.
      REQUIRE(g.is_free({q.row + dr, q.col}));
      REQUIRE(g.is_free({q.row, q.col + dc}));
      ++counts.b;
      summed += kSqrt2;
    } else {
      ++counts.a;
      summed += 1.0;
    }
  }
  CHECK(std::abs(summed - r.cost) <= 1e-9 * std::max(1.0, r.cost));
  return counts;
}

Grid random_grid(Rng& rng, int w, int h, double density) {
  Grid g(w, h);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) g.set_blocked({r, c}, rng.uniform() < density);
  return g;
}

Pos random_free_cell(Rng& rng, const Grid& g) {
  // Maps in these tests always keep at least one free cell (the caller frees one).
  while (true) {
    const Pos p{static_cast<int>(rng.below(static_cast<std::uint64_t>(g.height()))),
                static_cast<int>(rng.below(static_cast<std::uint64_t>(g.width())))};
    if (g.is_free(p)) return p;
  }
}

std::string movingai_dir() { return NANONAV_MOVINGAI_DIR; }

}  // namespace

TEST_CASE("A* equals an exact Dijkstra on thousands of random maps", "[astar]") {
  Rng rng(20261123);
  AStar ws;  // one workspace across every size: reuse must not change results
  SearchResult res;
  std::vector<ExactCost> cost;
  std::vector<char> reached;
  int found = 0, not_found = 0, diagonal_paths = 0;
  for (int map = 0; map < 3000; ++map) {
    const int w = 4 + static_cast<int>(rng.below(29));
    const int h = 4 + static_cast<int>(rng.below(29));
    const double density = 0.4 * rng.uniform();
    Grid g = random_grid(rng, w, h, density);
    g.set_blocked({0, 0}, false);
    const Connectivity conn = (map % 2 == 0) ? Connectivity::Four : Connectivity::Eight;
    const Pos start = random_free_cell(rng, g);
    reference_dijkstra(g, start, conn, cost, reached);
    for (int q = 0; q < 3; ++q) {
      const Pos goal = random_free_cell(rng, g);
      INFO("map " << map << " " << w << "x" << h << " density " << density << " conn "
                  << static_cast<int>(conn) << " start (" << start.row << "," << start.col
                  << ") goal (" << goal.row << "," << goal.col << ")\n"
                  << format_text_map(g, start, goal == start ? std::optional<Pos>{} : goal));
      ws.search(g, start, goal, conn, res);
      const auto gi = static_cast<std::size_t>(goal.row * w + goal.col);
      REQUIRE(res.found == static_cast<bool>(reached[gi]));
      if (!res.found) {
        CHECK(res.path.empty());
        ++not_found;
        continue;
      }
      ++found;
      const ExactCost got = check_path(g, res, start, goal, conn);
      // Same exact cost as the reference (same numbers of straight and diagonal moves).
      REQUIRE(compare_exact(got, cost[gi]) == 0);
      const double exact = static_cast<double>(cost[gi].a) + static_cast<double>(cost[gi].b) * kSqrt2;
      REQUIRE(std::abs(res.cost - exact) <= 1e-9);
      diagonal_paths += got.b > 0;
    }
  }
  // The sample really covers both outcomes and diagonal moves.
  CHECK(found > 3000);
  CHECK(not_found > 50);
  CHECK(diagonal_paths > 500);
}

TEST_CASE("4-connected A* cost equals the reverse BFS distance", "[astar]") {
  Rng rng(7);
  AStar ws;
  std::vector<std::int32_t> dist;
  for (int map = 0; map < 300; ++map) {
    const int w = 4 + static_cast<int>(rng.below(29)), h = 4 + static_cast<int>(rng.below(29));
    Grid g = random_grid(rng, w, h, 0.35 * rng.uniform());
    g.set_blocked({h - 1, w - 1}, false);
    const Pos goal{h - 1, w - 1};
    goal_distances(g, goal, dist);
    for (int q = 0; q < 5; ++q) {
      const Pos s = random_free_cell(rng, g);
      const SearchResult r = ws.search(g, s, goal, Connectivity::Four);
      const std::int32_t d = dist[static_cast<std::size_t>(s.row * w + s.col)];
      REQUIRE(r.found == (d >= 0));
      if (r.found) REQUIRE(r.cost == static_cast<double>(d));
    }
  }
}

TEST_CASE("A* handles the trivial and the impossible", "[astar]") {
  const TextMap m = parse_text_map(R"(
    S.#.
    ..#G
    ..#.
  )");
  AStar ws;
  SECTION("a wall between start and goal: no path, not an error") {
    for (const auto conn : {Connectivity::Four, Connectivity::Eight}) {
      const SearchResult r = ws.search(m.grid, *m.start, *m.goal, conn);
      CHECK_FALSE(r.found);
      CHECK(r.path.empty());
      CHECK(r.cost == 0.0);
      CHECK(r.expansions == 6);  // the whole left region is explored
    }
  }
  SECTION("start == goal: a one-cell path of cost 0") {
    const SearchResult r = ws.search(m.grid, *m.start, *m.start, Connectivity::Eight);
    CHECK(r.found);
    CHECK(r.path == std::vector<Pos>{*m.start});
    CHECK(r.cost == 0.0);
  }
  SECTION("corner cutting is refused") {
    const TextMap c = parse_text_map(R"(
      S#
      .G
    )");
    const SearchResult r = ws.search(c.grid, *c.start, *c.goal, Connectivity::Eight);
    REQUIRE(r.found);
    CHECK(r.path.size() == 3);  // around the corner, not through it
    CHECK(r.cost == 2.0);
  }
}

TEST_CASE("A* rejects start/goal outside or blocked with SearchError", "[astar]") {
  const TextMap m = parse_text_map("..#\n...\n");
  AStar ws;
  const Pos ok{0, 0};
  for (const auto conn : {Connectivity::Four, Connectivity::Eight}) {
    CHECK_THROWS_AS(ws.search(m.grid, {-1, 0}, ok, conn), SearchError);
    CHECK_THROWS_AS(ws.search(m.grid, ok, {2, 0}, conn), SearchError);
    CHECK_THROWS_AS(ws.search(m.grid, ok, {0, 3}, conn), SearchError);
    CHECK_THROWS_AS(ws.search(m.grid, {0, 2}, ok, conn), SearchError);
    CHECK_THROWS_AS(ws.search(m.grid, ok, {0, 2}, conn), SearchError);
  }
  CHECK_THROWS_WITH(ws.search(m.grid, ok, {0, 2}), Catch::Contains("goal (0,2) is a blocked cell"));
  CHECK_THROWS_WITH(ws.search(m.grid, {5, 1}, ok), Catch::Contains("start (5,1) is outside"));
  // SearchError is an InvalidArgument and an Error, so callers can catch broadly.
  CHECK_THROWS_AS(ws.search(m.grid, {0, 2}, ok), InvalidArgument);
  std::vector<std::int32_t> dist;
  CHECK_THROWS_AS(goal_distances(m.grid, {0, 2}, dist), SearchError);
  CHECK_THROWS_AS(goal_distances(m.grid, {9, 9}, dist), SearchError);
}

TEST_CASE("A* tie-breaking follows the documented rule", "[astar]") {
  AStar ws;
  SECTION("4-connected open square: larger g first, then last pushed (Right after Down)") {
    // Every cell of the square lies on an optimal path (f = 4 everywhere), so the rule alone
    // picks the path: Right is pushed after Down and wins; deeper nodes win over shallower.
    const Grid g(3, 3);
    const SearchResult r = ws.search(g, {0, 0}, {2, 2}, Connectivity::Four);
    CHECK(r.path == std::vector<Pos>{{0, 0}, {0, 1}, {0, 2}, {1, 2}, {2, 2}});
    CHECK(r.expansions == 4);
  }
  SECTION("8-connected: at equal f the diagonal (larger g) is expanded first") {
    const Grid g(3, 2);
    const SearchResult r = ws.search(g, {0, 0}, {1, 2}, Connectivity::Eight);
    CHECK(r.path == std::vector<Pos>{{0, 0}, {1, 1}, {1, 2}});
    CHECK(r.cost == Approx(1.0 + kSqrt2).epsilon(1e-15));
  }
  SECTION("same query twice, and on a fresh workspace, gives the same path") {
    Rng rng(99);
    for (int i = 0; i < 200; ++i) {
      Grid g = random_grid(rng, 24, 17, 0.25);
      g.set_blocked({0, 0}, false);
      const Pos s = random_free_cell(rng, g), t = random_free_cell(rng, g);
      const auto conn = i % 2 ? Connectivity::Eight : Connectivity::Four;
      const SearchResult a = ws.search(g, s, t, conn);
      const SearchResult b = ws.search(g, s, t, conn);
      AStar fresh;
      const SearchResult c = fresh.search(g, s, t, conn);
      REQUIRE(a.found == b.found);
      CHECK(a.path == b.path);
      CHECK(a.path == c.path);
      CHECK(a.expansions == b.expansions);
      CHECK(a.expansions == c.expansions);
      CHECK(a.cost == c.cost);
    }
  }
}

TEST_CASE("A* workspace is reused: no allocation per query, across map sizes", "[astar]") {
  Rng rng(3);
  AStar ws;
  SearchResult r;
  const Grid big = random_grid(rng, 32, 32, 0.2);
  const Grid small = random_grid(rng, 5, 7, 0.2);
  Grid bigger(40, 30);  // all free: reaches the largest heap and path of the test
  ws.search(bigger, {0, 0}, {29, 39}, Connectivity::Eight, r);
  ws.search(bigger, {0, 0}, {29, 39}, Connectivity::Four, r);
  // Prepared map: many queries, zero allocations.
  ws.prepare(bigger);
  long before = g_allocations.load();
  for (int i = 0; i < 200; ++i) {
    const Pos s{static_cast<int>(rng.below(30)), static_cast<int>(rng.below(40))};
    const Pos t{static_cast<int>(rng.below(30)), static_cast<int>(rng.below(40))};
    ws.search(s, t, i % 2 ? Connectivity::Eight : Connectivity::Four, r);
    REQUIRE(r.found);
  }
  if (NANONAV_TEST_COUNT_ALLOCATIONS) CHECK(g_allocations.load() - before == 0);
  // Switching between maps of other sizes (each smaller than the first) stays correct ...
  for (const Grid* g : std::vector<const Grid*>{&big, &small, &bigger, &small}) {
    Grid copy = *g;
    copy.set_blocked({0, 0}, false);
    copy.set_blocked({g->height() - 1, g->width() - 1}, false);
    const Pos t{g->height() - 1, g->width() - 1};
    AStar fresh;
    const SearchResult expect = fresh.search(copy, {0, 0}, t, Connectivity::Eight);
    ws.search(copy, {0, 0}, t, Connectivity::Eight, r);
    CHECK(r.found == expect.found);
    CHECK(r.path == expect.path);
    CHECK(r.cost == expect.cost);
  }
  // ... and once a size has been seen, search(map, ...) on it does not allocate either.
  ws.search(bigger, {0, 0}, {29, 39}, Connectivity::Eight, r);
  before = g_allocations.load();
  for (int i = 0; i < 50; ++i) ws.search(bigger, {0, 0}, {29, 39}, Connectivity::Eight, r);
  if (NANONAV_TEST_COUNT_ALLOCATIONS) CHECK(g_allocations.load() - before == 0);
}

TEST_CASE("A* on a prepared map does not see later changes until prepare() again", "[astar]") {
  Grid g(5, 1);
  AStar ws;
  ws.prepare(g);
  g.set_blocked({0, 2}, true);
  CHECK(ws.search({0, 0}, {0, 4}, Connectivity::Four).found);  // the prepared copy
  CHECK_FALSE(ws.search(g, {0, 0}, {0, 4}, Connectivity::Four).found);  // re-prepared
}

TEST_CASE("A* reads strided costmaps through GridView with a lethal threshold", "[astar]") {
  // 4x3 map in a buffer of stride 6 with a Nav2-like lethal value; padding holds 255.
  const std::uint8_t buf[] = {0,   10,  253, 0, 255, 255,  //
                              0,   252, 254, 0, 255, 255,  //
                              100, 0,   0,   0, 255, 255};
  const GridView v(buf, 4, 3, 6, 253);
  const SearchResult r = astar(v, {0, 0}, {0, 3}, Connectivity::Eight);
  REQUIRE(r.found);
  // (1,1) -> (2,2) would cut the corner of the blocked (1,2): one diagonal, five straight.
  CHECK(r.path == std::vector<Pos>{{0, 0}, {1, 1}, {2, 1}, {2, 2}, {2, 3}, {1, 3}, {0, 3}});
  CHECK(r.cost == Approx(5.0 + kSqrt2).epsilon(1e-15));
}

TEST_CASE("scaled integer costs: exact order for the map sizes we use", "[astar]") {
  // The scale grows as maps shrink; 512x512 keeps 43 bits of fraction, enough for exact order
  // of any two path costs up to ~1.5 million cells (see astar.hpp).
  AStar ws;
  ws.prepare(Grid(512, 512));
  CHECK(ws.cost_shift() >= 41);
  ws.prepare(Grid(8, 8));
  CHECK(ws.cost_shift() >= 54);
  // The reported cost comes from the path's move counts: 211 straight + 300 diagonal here.
  Grid open(512, 512);
  const SearchResult r = astar(open, {0, 0}, {511, 300}, Connectivity::Eight);
  REQUIRE(r.found);
  CHECK(std::abs(r.cost - (211.0 + 300.0 * kSqrt2)) <= 1e-12 * r.cost);
}

TEST_CASE("goal_distances and optimal_action_mask on a hand-made map", "[astar]") {
  const TextMap m = parse_text_map(R"(
    S..#.
    .#.##
    ....G
  )");
  std::vector<std::int32_t> d;
  goal_distances(m.grid, *m.goal, d);
  const std::vector<std::int32_t> expect = {6, 5, 4, -1, -1,  //
                                            5, -1, 3, -1, -1,  //
                                            4, 3, 2, 1, 0};
  CHECK(d == expect);
  const auto bit = [](Action a) { return static_cast<std::uint8_t>(1u << static_cast<int>(a)); };
  CHECK(optimal_action_mask(m.grid, d, {0, 0}) == (bit(Action::Down) | bit(Action::Right)));
  CHECK(optimal_action_mask(m.grid, d, {0, 2}) == bit(Action::Down));
  CHECK(optimal_action_mask(m.grid, d, {2, 0}) == bit(Action::Right));
  CHECK(optimal_action_mask(m.grid, d, {1, 2}) == bit(Action::Down));
  CHECK(optimal_action_mask(m.grid, d, {2, 4}) == bit(Action::Stay));
  CHECK(optimal_action_mask(m.grid, d, {1, 1}) == 0);  // blocked
  CHECK(optimal_action_mask(m.grid, d, {0, 4}) == 0);  // free but unreachable
  // The A* teacher's first move is always one of the optimal actions.
  AStar ws;
  const SearchResult r = ws.search(m.grid, *m.start, *m.goal);
  REQUIRE(r.found);
  for (std::size_t i = 0; i + 1 < r.path.size(); ++i) {
    const Action a = action_between(r.path[i], r.path[i + 1]);
    CHECK((optimal_action_mask(m.grid, d, r.path[i]) & bit(a)) != 0);
  }
}

// ---- every problem of the Moving AI files ---------------------------------------------------

namespace {
void check_scenario_file(const std::string& name) {
  const std::string scen = movingai_dir() + "/" + name + ".map.scen";
  std::vector<ScenProblem> problems;
  // A missing file is a failure, not a skip: these checks are the optimality proof.
  REQUIRE_NOTHROW(problems = read_movingai_scen(scen));
  REQUIRE_FALSE(problems.empty());
  Grid grid;
  REQUIRE_NOTHROW(grid = read_movingai_map(resolve_scen_map(scen, problems.front().map)));
  const int n = static_cast<int>(problems.size());
  std::vector<double> got(problems.size(), -1.0);
  std::vector<char> valid(problems.size(), 0);
  // Two threads (one workspace each): the maze alone has 11960 long searches.
#pragma omp parallel num_threads(2)
  {
    AStar ws;
    ws.prepare(grid);
    SearchResult r;
#pragma omp for schedule(dynamic, 16)
    for (int i = 0; i < n; ++i) {
      const ScenProblem& p = problems[static_cast<std::size_t>(i)];
      if (p.width != grid.width() || p.height != grid.height()) continue;
      ws.search(p.start, p.goal, Connectivity::Eight, r);
      if (!r.found) continue;
      got[static_cast<std::size_t>(i)] = r.cost;
      // Cheap path check off the main thread: contiguous, free, no corner cutting, sums up.
      bool ok = r.path.front() == p.start && r.path.back() == p.goal;
      double sum = 0.0;
      for (std::size_t k = 1; ok && k < r.path.size(); ++k) {
        const Pos a = r.path[k - 1], b = r.path[k];
        const int dr = b.row - a.row, dc = b.col - a.col;
        ok = grid.is_free(b) && std::abs(dr) <= 1 && std::abs(dc) <= 1 && (dr || dc);
        if (ok && dr && dc) ok = grid.is_free({a.row + dr, a.col}) && grid.is_free({a.row, a.col + dc});
        sum += (dr && dc) ? kSqrt2 : 1.0;
      }
      valid[static_cast<std::size_t>(i)] = ok && std::abs(sum - r.cost) <= 1e-9 * std::max(1.0, sum);
    }
  }
  int mismatches = 0;
  for (int i = 0; i < n; ++i) {
    const ScenProblem& p = problems[static_cast<std::size_t>(i)];
    const double g = got[static_cast<std::size_t>(i)];
    const bool ok = valid[static_cast<std::size_t>(i)] &&
                    std::abs(g - p.optimal) <= 1e-3 * std::max(1.0, p.optimal);
    if (!ok && ++mismatches <= 5) {
      INFO(name << " problem " << i << ": start (" << p.start.row << "," << p.start.col
                << ") goal (" << p.goal.row << "," << p.goal.col << ") optimal " << p.optimal
                << " got " << g << " valid path " << static_cast<int>(valid[static_cast<std::size_t>(i)]));
      CHECK(ok);
    }
  }
  CHECK(mismatches == 0);
}
}  // namespace

TEST_CASE("Moving AI arena: every problem optimal", "[astar][movingai]") {
  check_scenario_file("arena");
}
TEST_CASE("Moving AI random512-10-0: every problem optimal", "[astar][movingai]") {
  check_scenario_file("random512-10-0");
}
TEST_CASE("Moving AI 8room_000: every problem optimal", "[astar][movingai]") {
  check_scenario_file("8room_000");
}
TEST_CASE("Moving AI maze512-1-0: every problem optimal", "[astar][movingai]") {
  check_scenario_file("maze512-1-0");
}

TEST_CASE("the expansion log lists each expanded cell once, as many as reported", "[astar]") {
  nanonav::Problem p = nanonav::random_problem(16, 16, 0.25, 99);
  nanonav::AStar ws;
  std::vector<nanonav::Pos> log;
  ws.set_expansion_log(&log);
  const nanonav::SearchResult r = ws.search(p.grid, p.start, p.goal);
  REQUIRE(r.found);
  CHECK(log.size() == r.expansions);
  CHECK(log.front() == p.start);
  std::vector<int> seen(256, 0);
  for (nanonav::Pos q : log) {
    CHECK(p.grid.is_free(q));
    CHECK(++seen[q.row * 16 + q.col] == 1);
  }
  ws.set_expansion_log(nullptr);
  ws.search(p.grid, p.start, p.goal);
  CHECK(log.size() == r.expansions);  // no longer recorded
}
