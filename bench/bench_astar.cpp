// A* speed, single-threaded: every problem of the four Moving AI .scen files (8-connected, no
// corner cutting) and random 8x8 / 32x32 maps. Every result is checked against the .scen
// optimum (or a plain Dijkstra for random maps) before anything is timed.
#include "command_line.hpp"
#include <nanonav/astar.hpp>
#include <nanonav/map_gen.hpp>
#include <nanonav/map_io.hpp>

#include <cxxopts.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <queue>
#include <string>
#include <vector>

using namespace nanonav;

namespace {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double wall = 1e300, cpu = 1e300;  // best of the repeats, seconds for the whole set
  std::size_t expansions = 0;        // per pass
};

// Runs `pass` (one pass over every query, returning its expansions) `repeat` times and keeps
// the fastest pass (wall and CPU time separately).
Timing time_passes(int repeat, const std::function<std::size_t()>& pass) {
  Timing t;
  for (int i = 0; i < repeat; ++i) {
    const double w0 = wall_seconds(), c0 = thread_cpu_seconds();
    t.expansions = pass();
    t.wall = std::min(t.wall, wall_seconds() - w0);
    t.cpu = std::min(t.cpu, thread_cpu_seconds() - c0);
  }
  return t;
}

// Plain Dijkstra in doubles: the naive reference for random maps.
double reference_cost(const Grid& g, Pos s, Pos t, Connectivity conn) {
  std::vector<double> d(static_cast<std::size_t>(g.cells()), 1e300);
  using Item = std::pair<double, int>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> pq;
  const int w = g.width();
  d[static_cast<std::size_t>(s.row * w + s.col)] = 0.0;
  pq.push({0.0, s.row * w + s.col});
  while (!pq.empty()) {
    const auto [c, i] = pq.top();
    pq.pop();
    if (c > d[static_cast<std::size_t>(i)]) continue;
    const int r = i / w, col = i % w;
    if (r == t.row && col == t.col) return c;
    for (int dr = -1; dr <= 1; ++dr)
      for (int dc = -1; dc <= 1; ++dc) {
        const bool diag = dr != 0 && dc != 0;
        if ((dr == 0 && dc == 0) || (diag && conn == Connectivity::Four)) continue;
        if (!g.is_free({r + dr, col + dc})) continue;
        if (diag && (!g.is_free({r + dr, col}) || !g.is_free({r, col + dc}))) continue;
        const double nc = c + (diag ? kSqrt2 : 1.0);
        const auto j = static_cast<std::size_t>((r + dr) * w + col + dc);
        if (nc < d[j]) {
          d[j] = nc;
          pq.push({nc, static_cast<int>(j)});
        }
      }
  }
  return -1.0;
}

struct Row {
  std::string name;
  std::size_t queries;
  Timing t;
  double warthog_us;  // 0 = no reference figure
};

void print_row(const Row& r) {
  const double n = static_cast<double>(r.queries);
  const double us = 1e6 * r.t.wall / n, us_cpu = 1e6 * r.t.cpu / n;
  std::printf("| %-22s | %7zu | %10.2f | %10.2f | %8.2f | %9.0f |", r.name.c_str(), r.queries, us,
              us_cpu, static_cast<double>(r.t.expansions) / r.t.cpu / 1e6,
              static_cast<double>(r.t.expansions) / n);
  if (r.warthog_us > 0)
    std::printf(" %9.1f | %6.2fx |\n", r.warthog_us, r.warthog_us / us_cpu);
  else
    std::printf(" %9s | %7s |\n", "-", "-");
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options opts("bench_astar", "A* speed on the Moving AI benchmarks and random maps");
  opts.add_options()
      ("dir", "folder with the Moving AI .map/.scen files",
       cxxopts::value<std::string>()->default_value(NANONAV_MOVINGAI_DIR))
      ("repeat", "timed passes per set (the fastest is kept)", cxxopts::value<int>()->default_value("3"))
      ("random", "random problems per size", cxxopts::value<int>()->default_value("10000"))
      ("density", "obstacle density of the random maps", cxxopts::value<double>()->default_value("0.3"))
      ("only", "run only the sets whose name contains this", cxxopts::value<std::string>()->default_value(""))
      ("h,help", "this help");
  const auto args = opts.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  const std::string dir = args["dir"].as<std::string>();
  const int repeat = std::max(1, args["repeat"].as<int>());
  const int nrandom = std::max(1, args["random"].as<int>());
  const double density = args["density"].as<double>();
  const std::string only = args["only"].as<std::string>();

  print_command(argc, argv);
  std::printf("single-threaded; times are the fastest of %d passes over every problem; "
              "8-connected, no corner cutting for Moving AI\n\n", repeat);
  std::printf("| %-22s | %7s | %10s | %10s | %8s | %9s | %9s | %7s |\n", "set", "queries",
              "us/query", "us/q (cpu)", "Mexp/s", "exp/query", "warthog", "speedup");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(24, '-').c_str(), std::string(9, '-').c_str(),
              std::string(12, '-').c_str(), std::string(12, '-').c_str(), std::string(10, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str(), std::string(9, '-').c_str());

  // warthog-core A* on this machine class (from the issue), microseconds per query.
  struct Set {
    const char* name;
    double warthog_us;
  };
  const Set sets[] = {{"arena", 6.5}, {"random512-10-0", 1850.0}, {"8room_000", 6300.0},
                      {"maze512-1-0", 8700.0}};
  int failures = 0;
  for (const auto& s : sets) {
    if (!only.empty() && std::string(s.name).find(only) == std::string::npos) continue;
    const std::string scen = dir + "/" + s.name + ".map.scen";
    const std::vector<ScenProblem> problems = read_movingai_scen(scen);
    const Grid grid = read_movingai_map(resolve_scen_map(scen, problems.at(0).map));
    AStar ws;
    ws.prepare(grid);
    SearchResult r;
    for (const auto& p : problems) {  // check every answer first (also warms the caches)
      ws.search(p.start, p.goal, Connectivity::Eight, r);
      if (!r.found || std::abs(r.cost - p.optimal) > 1e-3 * std::max(1.0, p.optimal)) {
        if (++failures <= 5)
          std::fprintf(stderr, "%s: wrong cost %.6f, optimal %.6f\n", s.name, r.cost, p.optimal);
      }
    }
    const Timing t = time_passes(repeat, [&] {
      std::size_t e = 0;
      for (const auto& p : problems) {
        ws.search(p.start, p.goal, Connectivity::Eight, r);
        e += r.expansions;
      }
      return e;
    });
    print_row({s.name, problems.size(), t, s.warthog_us});
    std::fflush(stdout);
  }

  // Random maps: a new map per query, so the time includes prepare() of each map.
  for (const int size : {8, 32}) {
    for (const auto conn : {Connectivity::Four, Connectivity::Eight}) {
      const std::string name = "random " + std::to_string(size) + "x" + std::to_string(size) +
                               (conn == Connectivity::Four ? " 4c" : " 8c");
      if (!only.empty() && name.find(only) == std::string::npos) continue;
      std::vector<Problem> problems;
      problems.reserve(static_cast<std::size_t>(nrandom));
      for (int i = 0; i < nrandom; ++i)
        problems.push_back(random_problem(size, size, density, 2026, static_cast<std::uint64_t>(i)));
      AStar ws;
      SearchResult r;
      for (const auto& p : problems) {
        ws.search(p.grid, p.start, p.goal, conn, r);
        const double ref = reference_cost(p.grid, p.start, p.goal, conn);
        if (!r.found || std::abs(r.cost - ref) > 1e-9 * std::max(1.0, ref)) {
          if (++failures <= 5)
            std::fprintf(stderr, "%s: wrong cost %.9f, reference %.9f\n", name.c_str(), r.cost, ref);
        }
      }
      const Timing t = time_passes(repeat, [&] {
        std::size_t e = 0;
        for (const auto& p : problems) {
          ws.search(p.grid, p.start, p.goal, conn, r);
          e += r.expansions;
        }
        return e;
      });
      print_row({name, problems.size(), t, 0.0});
      std::fflush(stdout);
    }
  }
  std::printf("\nspeedup = warthog us/query / our us/query (cpu). warthog-core A* reference figures "
              "(from the issue): arena 6.5 us, random512-10-0 1.85 ms (~5 M exp/s), 8room_000 6.3 ms, "
              "maze512-1-0 8.7 ms per query.\n");
  if (failures > 0) {
    std::fprintf(stderr, "%d results did not match the reference\n", failures);
    return 1;
  }
  std::printf("all results matched the optimum before timing\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_astar: %s\n", e.what());
  return 1;
}
