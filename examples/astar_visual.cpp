// astar_visual: shows what the A* teacher does on one map, in the terminal and as a PNG.
//   astar_visual --seed 42 --size 8 --density 0.2 [--save astar.png]
//   astar_visual --map arena.map --scen arena.map.scen --index 17 --connectivity 8 --save a.png
//   astar_visual --map my.txt   (a nanonav text map with S and G marked)
#include <cxxopts.hpp>
#include <nanonav/image.hpp>
#include <nanonav/map_io.hpp>
#include <nanonav/nanonav.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

using namespace nanonav;

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("astar_visual", "Draw the A* teacher's path on a map (ASCII and PNG)");
  options.add_options()
      ("seed", "seed of the random map", cxxopts::value<std::uint64_t>()->default_value("42"))
      ("size", "side of the random square map", cxxopts::value<int>()->default_value("8"))
      ("density", "obstacle density of the random map", cxxopts::value<double>()->default_value("0.2"))
      ("map", "a Moving AI .map or a nanonav text map instead of a random one", cxxopts::value<std::string>())
      ("scen", "a Moving AI .scen file: take start/goal from problem --index", cxxopts::value<std::string>())
      ("index", "problem index in --scen", cxxopts::value<int>()->default_value("0"))
      ("connectivity", "4 (the teacher) or 8 (Moving AI rules)", cxxopts::value<int>()->default_value("4"))
      ("save", "write a PNG picture to this path", cxxopts::value<std::string>())
      ("scale", "pixels per cell in the PNG (0: automatic)", cxxopts::value<int>()->default_value("0"))
      ("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  const int conn_flag = args["connectivity"].as<int>();
  if (conn_flag != 4 && conn_flag != 8) throw InvalidArgument("--connectivity must be 4 or 8");
  const Connectivity conn = conn_flag == 4 ? Connectivity::Four : Connectivity::Eight;

  Grid grid;
  Pos start{}, goal{};
  std::string title;
  if (args.count("map")) {
    const std::string path = args["map"].as<std::string>();
    if (ends_with(path, ".map")) {
      grid = read_movingai_map(path);
      if (!args.count("scen")) throw InvalidArgument("a Moving AI .map needs --scen for start and goal");
    } else {
      TextMap tm = read_text_map(path);
      grid = std::move(tm.grid);
      if (!args.count("scen")) {
        if (!tm.start || !tm.goal) throw InvalidArgument(path + ": mark start S and goal G, or pass --scen");
        start = *tm.start;
        goal = *tm.goal;
      }
    }
    title = path;
    if (args.count("scen")) {
      const auto scen = read_movingai_scen(args["scen"].as<std::string>());
      const int k = args["index"].as<int>();
      if (k < 0 || k >= static_cast<int>(scen.size()))
        throw InvalidArgument("--index " + std::to_string(k) + " is outside the " +
                              std::to_string(scen.size()) + " problems of the .scen file");
      start = scen[k].start;
      goal = scen[k].goal;
      title += " problem " + std::to_string(k) + " (optimal " + std::to_string(scen[k].optimal) + ")";
    }
  } else {
    const int size = args["size"].as<int>();
    if (size < 2 || size > 4096) throw InvalidArgument("--size must be in 2..4096");
    Problem p = random_problem(size, size, args["density"].as<double>(), args["seed"].as<std::uint64_t>());
    grid = std::move(p.grid);
    start = p.start;
    goal = p.goal;
    title = "random " + std::to_string(size) + "x" + std::to_string(size) + " map, seed " +
            std::to_string(args["seed"].as<std::uint64_t>());
  }

  AStar astar_ws;
  std::vector<Pos> expanded;
  if (args.count("save")) astar_ws.set_expansion_log(&expanded);
  const auto t0 = std::chrono::steady_clock::now();
  const SearchResult r = astar_ws.search(grid, start, goal, conn);
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();

  std::printf("%s, %d-connected\n", title.c_str(), conn_flag);
  std::printf("start (row %d, col %d) -> goal (row %d, col %d)\n", start.row, start.col, goal.row, goal.col);
  if (grid.width() <= 64 && grid.height() <= 64) std::printf("%s", ascii_grid(grid, r.path, start, goal).c_str());
  if (r.found) {
    std::printf("path: %zu cells, cost %.4f, %zu expansions, %.1f us\n", r.path.size(), r.cost, r.expansions, us);
  } else {
    std::printf("no path (%zu expansions, %.1f us)\n", r.expansions, us);
  }

  if (args.count("save")) {
    int scale = args["scale"].as<int>();
    if (scale == 0) scale = std::max(2, std::min(48, 512 / std::max(grid.width(), grid.height())));
    GridPanel panel(grid, scale);
    for (Pos e : expanded) panel.fill_cell(e, palette::kExpanded);
    panel.draw_path(r.path, palette::kAStar);
    panel.mark_cell(start, palette::kStart);
    panel.mark_cell(goal, palette::kGoal);
    const std::string out = args["save"].as<std::string>();
    panel.image().save_png(out);
    std::printf("saved %s (%dx%d pixels; light blue: the %zu expanded cells)\n", out.c_str(), panel.image().width(),
                panel.image().height(), expanded.size());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "astar_visual: error: %s\n", e.what());
  return 1;
}
