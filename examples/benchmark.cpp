// benchmark: closed-loop rollouts of a trained TRM against the A* teacher.
//   benchmark --checkpoint checkpoints/best.safetensors --episodes 1000 --seed 12345
//   benchmark --checkpoint ... --scen problems.scen        (Moving AI problems instead)
#include <cxxopts.hpp>
#include <nanonav/checkpoint.hpp>
#include <nanonav/detail/sysinfo.hpp>
#include <nanonav/map_io.hpp>
#include <nanonav/rollout.hpp>

#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

using namespace nanonav;

namespace {

// One batched forward per step, split into fixed chunks across threads.
struct ModelPolicy {
  const Trm<float>& model;
  int threads;
  std::vector<TrmWorkspace<float>> ws;
  std::vector<nn::Mat<float>> logits;

  ModelPolicy(const Trm<float>& m, int t) : model(m), threads(t), ws(t), logits(t) {}

  void operator()(const std::uint8_t* tokens, int batch, std::uint8_t* actions) {
    const int chunk = 128, T = model.config().tokens();
    const int chunks = (batch + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int c = 0; c < chunks; ++c) {
      const int tid = omp_get_thread_num();
      const int b0 = c * chunk, m = std::min(chunk, batch - b0);
      trm_logits(model, tokens + static_cast<std::ptrdiff_t>(b0) * T, m, ws[tid], logits[tid]);
      for (int i = 0; i < m; ++i) {
        Eigen::Index arg = 0;
        logits[tid].row(i).maxCoeff(&arg);
        actions[b0 + i] = static_cast<std::uint8_t>(arg);
      }
    }
  }
};

std::vector<Problem> scen_problems(const std::string& scen_path, int n) {
  const auto scen = read_movingai_scen(scen_path);
  std::map<std::string, Grid> maps;
  std::vector<Problem> out;
  for (const ScenProblem& sp : scen) {
    const std::string mp = resolve_scen_map(scen_path, sp.map);
    auto it = maps.find(mp);
    if (it == maps.end()) it = maps.emplace(mp, read_movingai_map(mp)).first;
    const Grid& g = it->second;
    if (g.width() != n || g.height() != n)
      throw InvalidArgument(mp + " is " + std::to_string(g.width()) + "x" + std::to_string(g.height()) +
                            " but the model was trained on " + std::to_string(n) + "x" + std::to_string(n) +
                            " maps: benchmark it on maps of its own size");
    if (!g.is_free(sp.start) || !g.is_free(sp.goal))
      throw InvalidArgument(scen_path + ": a problem's start or goal is blocked or off its map");
    if (sp.start == sp.goal) continue;
    out.push_back({g, sp.start, sp.goal});
  }
  if (out.empty()) throw InvalidArgument(scen_path + ": no problems with start != goal");
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("benchmark", "Roll the trained TRM out against A* and report");
  options.add_options()
      ("checkpoint", "model checkpoint", cxxopts::value<std::string>()->default_value("checkpoints/best.safetensors"))
      ("episodes", "random episodes", cxxopts::value<int>()->default_value("100"))
      ("grid-size", "map side (0: the model's)", cxxopts::value<int>()->default_value("0"))
      ("obstacle-density", "obstacle density of the random maps", cxxopts::value<double>()->default_value("0.2"))
      ("seed", "seed of the random maps (use one never used in training)", cxxopts::value<std::uint64_t>()->default_value("12345"))
      ("scen", "evaluate on the problems of this Moving AI .scen file instead", cxxopts::value<std::string>())
      ("max-steps", "step limit per episode (0: 4 N^2)", cxxopts::value<int>()->default_value("0"))
      ("threads", "OpenMP threads", cxxopts::value<int>()->default_value("2"))
      ("json", "also write every figure to this JSON file", cxxopts::value<std::string>())
      ("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  const std::string ckpt = args["checkpoint"].as<std::string>();
  const Trm<float> model = load_model<float>(ckpt);
  const int n = model.config().grid_size;
  const int gs = args["grid-size"].as<int>();
  if (gs != 0 && gs != n)
    throw InvalidArgument("--grid-size " + std::to_string(gs) + " does not match the model's " + std::to_string(n) +
                          " (the model only reads " + std::to_string(n) + "x" + std::to_string(n) + " maps)");
  const int threads = args["threads"].as<int>();
  if (threads < 1 || threads > 256) throw InvalidArgument("--threads must be in 1..256");
  const int episodes = args["episodes"].as<int>();
  const double density = args["obstacle-density"].as<double>();
  const std::uint64_t seed = args["seed"].as<std::uint64_t>();

  std::vector<Problem> problems;
  std::string source;
  if (args.count("scen")) {
    source = args["scen"].as<std::string>();
    problems = scen_problems(source, n);
  } else {
    if (episodes < 1) throw InvalidArgument("--episodes must be >= 1");
    for (int i = 0; i < episodes; ++i) problems.push_back(random_problem(n, n, density, seed, static_cast<std::uint64_t>(i)));
    source = "random maps, density " + std::to_string(density) + ", seed " + std::to_string(seed);
  }

  RolloutOptions ro;
  ro.max_steps = args["max-steps"].as<int>();
  ro.encoding = model.config().encoding;
  ModelPolicy policy(model, threads);
  std::vector<EpisodeResult> results;
  const RolloutReport rep = rollout(policy, problems, &results, ro);

  const bool pass_success = rep.success_rate >= 0.85, pass_ratio = rep.successes > 0 && rep.mean_ratio <= 1.3;
  std::printf("=== NanoNav Benchmark Results ===\n\n");
  std::printf("Grid Size: %dx%d\nEpisodes:  %d (%s)\nModel:     %s (%s encoding, dim %d, depth %d, recursion %d%s)\n\n", n,
              n, rep.episodes, source.c_str(), ckpt.c_str(), to_string(model.config().encoding),
              model.config().dim, model.config().depth, model.config().recursion,
              model.config().input_injection ? ", input injection" : "");
  std::printf("Agent   Success   Avg Ratio   Timeouts\n");
  std::printf("A*      100.0%%    1.00        0\n");
  std::printf("TRM     %5.1f%%    %-10.3f  %d\n\n", 100 * rep.success_rate, rep.mean_ratio, rep.timeouts);
  std::printf("Collisions: %d   Optimal paths: %.1f%% of successes   Step accuracy: %.2f%%\n", rep.collisions,
              100 * rep.optimal_share, 100 * rep.step_accuracy);
  std::printf("Decisions: %lld at %.0f decisions/s (%d threads)   Peak RSS: %.0f MiB\n\n", rep.decisions,
              rep.decisions_per_second, threads, detail::peak_rss_mib());
  std::printf("Success Rate >= 85%%: %s   Path Ratio <= 1.3: %s\n", pass_success ? "PASS" : "FAIL",
              pass_ratio ? "PASS" : "FAIL");

  if (args.count("json")) {
    nlohmann::json j = {{"checkpoint", ckpt},
                        {"grid_size", n},
                        {"source", source},
                        {"config", to_json(model.config())},
                        {"episodes", rep.episodes},
                        {"successes", rep.successes},
                        {"collisions", rep.collisions},
                        {"timeouts", rep.timeouts},
                        {"success_rate", rep.success_rate},
                        {"mean_ratio", rep.mean_ratio},
                        {"optimal_share", rep.optimal_share},
                        {"step_accuracy", rep.step_accuracy},
                        {"decisions", rep.decisions},
                        {"decisions_per_second", rep.decisions_per_second},
                        {"threads", threads},
                        {"peak_rss_mib", detail::peak_rss_mib()},
                        {"pass_success", pass_success},
                        {"pass_ratio", pass_ratio}};
    const std::string text = j.dump(2) + "\n";
    detail::write_file_atomically(args["json"].as<std::string>(), text.data(), text.size());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "benchmark: error: %s\n", e.what());
  return 1;
}
