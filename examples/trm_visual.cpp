// trm_visual: one map, the A* path and the TRM's path side by side (ASCII, and a PNG with --save).
//   trm_visual --checkpoint checkpoints/best.safetensors --seed 42 --save compare.png
#include <cxxopts.hpp>
#include <nanonav/image.hpp>
#include <nanonav/policy.hpp>
#include <nanonav/rollout.hpp>

#include <cstdio>
#include <iostream>

using namespace nanonav;

int main(int argc, char** argv) try {
  cxxopts::Options options("trm_visual", "Compare the TRM's path with A*'s on one random map");
  options.add_options()
      ("checkpoint", "model checkpoint", cxxopts::value<std::string>()->default_value("checkpoints/best.safetensors"))
      ("seed", "seed of the random map", cxxopts::value<std::uint64_t>()->default_value("42"))
      ("obstacle-density", "obstacle density", cxxopts::value<double>()->default_value("0.2"))
      ("save", "write a PNG with both panels", cxxopts::value<std::string>())
      ("no-plot", "ASCII only (no PNG even with --save)")
      ("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  Policy policy(args["checkpoint"].as<std::string>());
  const int n = policy.grid_size();
  const Problem p = random_problem(n, n, args["obstacle-density"].as<double>(), args["seed"].as<std::uint64_t>());
  const SearchResult a = astar(p.grid, p.start, p.goal);

  std::vector<EpisodeResult> res;
  rollout(
      [&](const std::uint8_t* tokens, int batch, std::uint8_t* actions) {
        // Decode position and goal back from the tokens and ask the robot-facing facade.
        for (int b = 0; b < batch; ++b) {
          const std::uint8_t* t = tokens + static_cast<std::ptrdiff_t>(b) * tokens_per_state(n);
          const Pos cur{t[n * n] - kTokenCoordOffset, t[n * n + 1] - kTokenCoordOffset};
          actions[b] = static_cast<std::uint8_t>(policy.act(p.grid, cur, p.goal));
        }
      },
      {p}, &res);
  const EpisodeResult& r = res[0];

  // Where it went wrong: the first cell whose decision was not optimal, and a collision's cell.
  std::vector<std::int32_t> dist;
  goal_distances(p.grid, p.goal, dist);
  std::vector<Pos> wrong;
  for (std::size_t i = 0; i + 1 < r.path.size() || (i + 1 == r.path.size() && r.outcome != Outcome::Success); ++i) {
    const Pos cur = r.path[i];
    const Action act = i + 1 < r.path.size() ? action_between(cur, r.path[i + 1]) : r.last_action;
    if (!(optimal_action_mask(p.grid, dist, cur) & (1u << static_cast<int>(act)))) {
      wrong.push_back(cur);
      break;
    }
    if (i + 1 == r.path.size()) break;
  }

  std::printf("map seed %llu, %dx%d: A* %d moves; TRM: %s after %d moves%s\n",
              static_cast<unsigned long long>(args["seed"].as<std::uint64_t>()), n, n,
              static_cast<int>(a.path.size()) - 1, to_string(r.outcome), r.steps,
              r.outcome == Outcome::Success ? (r.steps == r.astar_length ? " (optimal)" : " (longer than A*)") : "");
  std::printf("%s", ascii_side_by_side("A*", ascii_grid(p.grid, a.path, p.start, p.goal), "TRM (x: first non-optimal move)",
                                       ascii_grid(p.grid, r.path, p.start, p.goal, wrong))
                        .c_str());
  if (args.count("save") && !args.count("no-plot")) {
    const int scale = std::max(8, 320 / n);
    GridPanel left(p.grid, scale), right(p.grid, scale);
    left.draw_path(a.path, palette::kAStar);
    right.draw_path(r.path, palette::kModel);
    for (GridPanel* panel : {&left, &right}) {
      panel->mark_cell(p.start, palette::kStart);
      panel->mark_cell(p.goal, palette::kGoal);
    }
    for (Pos w : wrong) right.cross_cell(w, palette::kError);
    const Image both = side_by_side({left.image(), right.image()}, scale / 2);
    Image out(both.width(), both.height() + 24, palette::kBackground);
    draw_text(out, 4, 4, "A* (blue)", Rgb{20, 20, 20}, 2);
    draw_text(out, left.image().width() + scale / 2 + 4, 4, std::string("TRM (orange): ") + to_string(r.outcome),
              Rgb{20, 20, 20}, 2);
    out.blit(both, 0, 24);
    out.save_png(args["save"].as<std::string>());
    std::printf("saved %s\n", args["save"].as<std::string>().c_str());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "trm_visual: error: %s\n", e.what());
  return 1;
}
