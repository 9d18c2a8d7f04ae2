// bench_ab: training speed of this checkout against a baseline checkout, in one process.
//
// The host's speed drifts by 15-25 % within minutes, more than most changes are worth, so two
// builds timed one after the other compare the host, not the builds. Here both builds are in
// one program (bench/ab/side.cpp, compiled once per checkout) and take turns: a round runs
// --steps training steps of each, in alternating order (ABBA...), and the ratio of the two is
// taken per round. Drift slower than a round cancels out of those ratios; the median over the
// rounds and its quartiles are printed.
//
// Build (the baseline is any checkout of nanonav, e.g. a git worktree of an older commit):
//   git worktree add /tmp/base <commit>
//   cmake --preset bench -DNANONAV_AB_BASE=/tmp/base/include
//   cmake --build --preset bench --target bench_ab
//   build/bench/bin/bench_ab --dim 64 --depth 2 --threads 1
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <exception>
#include <stdexcept>
#include <vector>

#include <omp.h>

#include <cxxopts.hpp>

#include "../command_line.hpp"

double nanonav_ab_base(int steps, int dim, int depth, int recursion, double aux, double dropout, int batch, int threads,
                       int chunk);
double nanonav_ab_head(int steps, int dim, int depth, int recursion, double aux, double dropout, int batch, int threads,
                       int chunk);

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("bench_ab", "Training speed of this checkout against a baseline, taking turns in one process");
  options.add_options()
    ("dim", "model width", cxxopts::value<int>()->default_value("64"))
    ("depth", "mixer blocks", cxxopts::value<int>()->default_value("2"))
    ("recursion", "applications of the network", cxxopts::value<int>()->default_value("8"))
    ("aux-distance", "weight of the aux distance loss (0: no aux head), on random targets", cxxopts::value<double>()->default_value("0"))
    ("threads", "OpenMP threads", cxxopts::value<int>()->default_value("1"))
    ("rounds", "rounds (each runs both builds)", cxxopts::value<int>()->default_value("40"))
    ("steps", "training steps per build per round", cxxopts::value<int>()->default_value("1"))
    ("batch", "samples per step", cxxopts::value<int>()->default_value("64"))
    ("chunk", "samples per micro-batch (0: the trainer's default for the width)", cxxopts::value<int>()->default_value("0"))
    ("base-chunk", "the baseline's samples per micro-batch (0: as --chunk); with the baseline built from this checkout, an A/B of micro-batch sizes",
     cxxopts::value<int>()->default_value("0"))
    ("dropout", "dropout probability", cxxopts::value<double>()->default_value("0.1"))
    ("h,help", "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  const int dim = args["dim"].as<int>(), depth = args["depth"].as<int>(), threads = args["threads"].as<int>();
  const int rounds = args["rounds"].as<int>(), steps = args["steps"].as<int>(), batch = args["batch"].as<int>();
  const int chunk = args["chunk"].as<int>();
  const int base_chunk = args["base-chunk"].as<int>() == 0 ? chunk : args["base-chunk"].as<int>();
  const double dropout = args["dropout"].as<double>();
  const int recursion = args["recursion"].as<int>();
  const double aux = args["aux-distance"].as<double>();
  if (dim < 2 || dim % 2 != 0 || dim > 1024) throw std::invalid_argument("--dim must be even, in 2..1024");
  if (depth < 1 || depth > 16) throw std::invalid_argument("--depth must be in 1..16");
  if (threads < 1 || threads > 256) throw std::invalid_argument("--threads must be in 1..256");
  if (rounds < 4 || rounds > 10000) throw std::invalid_argument("--rounds must be in 4..10000");
  if (steps < 1 || steps > 1000) throw std::invalid_argument("--steps must be in 1..1000");
  if (batch < 1 || batch > 4096) throw std::invalid_argument("--batch must be in 1..4096");
  if (chunk < 0 || chunk > batch) throw std::invalid_argument("--chunk must be 0 or in 1..batch");
  if (base_chunk < 0 || base_chunk > batch) throw std::invalid_argument("--base-chunk must be 0 or in 1..batch");
  if (!(dropout >= 0.0 && dropout < 1.0)) throw std::invalid_argument("--dropout must be in [0, 1)");
  if (recursion < 1 || recursion > 64) throw std::invalid_argument("--recursion must be in 1..64");
  if (!(aux >= 0.0 && aux <= 100.0)) throw std::invalid_argument("--aux-distance must be in [0, 100]");
  print_command(argc, argv);
  omp_set_num_threads(threads);

  using Entry = double (*)(int, int, int, int, double, double, int, int, int);
  const Entry side[2] = {nanonav_ab_base, nanonav_ab_head};
  // set-up returns the micro-batch the side's trainer uses (its default for 0)
  const int used[2] = {static_cast<int>(side[0](0, dim, depth, recursion, aux, dropout, batch, threads, base_chunk)),
                       static_cast<int>(side[1](0, dim, depth, recursion, aux, dropout, batch, threads, chunk))};
  double loss[2] = {side[0](2, 0, 0, 0, 0, 0, 0, 0, 0), side[1](2, 0, 0, 0, 0, 0, 0, 0, 0)};  // warm-up
  std::vector<double> secs[2], ratio;
  for (int r = 0; r < rounds; ++r) {
    for (int turn = 0; turn < 2; ++turn) {
      const int v = (r + turn) % 2;  // base first in even rounds, head first in odd ones
      const double c0 = cpu_seconds();
      loss[v] = side[v](steps, 0, 0, 0, 0, 0, 0, 0, 0);
      secs[v].push_back((cpu_seconds() - c0) / threads);
    }
    ratio.push_back(secs[0].back() / secs[1].back());
  }
  double total[2] = {0, 0};
  for (int v = 0; v < 2; ++v)
    for (double s : secs[v]) total[v] += s;
  const double samples = static_cast<double>(batch) * steps * rounds;
  std::printf("dim %d depth %d recursion %d, aux distance %.2f, batch %d, dropout %.2f, %d thread(s), %d rounds of %d step(s)\n",
              dim, depth, recursion, aux, batch, dropout, threads, rounds, steps);
  std::printf("base: micro-batch %d, %.1f samples/s per CPU (last loss %.6f)\n", used[0], samples / total[0], loss[0]);
  std::printf("head: micro-batch %d, %.1f samples/s per CPU (last loss %.6f)\n", used[1], samples / total[1], loss[1]);
  std::printf("head / base speed: %.3f over all rounds; per round median %.3f (quartiles %.3f, %.3f)\n",
              total[0] / total[1], quantile(ratio, 0.5), quantile(ratio, 0.25), quantile(ratio, 0.75));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_ab: %s\n", e.what());
  return 1;
}
