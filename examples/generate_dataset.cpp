// Generates the train and test datasets: random solvable N x N maps, A* demonstrations,
// optional 8x dihedral augmentation (train split only), saved as safetensors.
//
//   generate_dataset --num-train 50000 --num-test 1000 --augment --output-dir data
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <unordered_set>

#include <cxxopts.hpp>

#include <nanonav/dataset.hpp>

namespace {

using Clock = std::chrono::steady_clock;

std::string human_bytes(std::uint64_t b) {
  char buf[32];
  if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / (1 << 10));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

// A hash of a whole problem (map, start, goal), to spot test maps that also occur in train.
std::uint64_t problem_hash(const nanonav::Problem& p) {
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&](std::uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  for (int i = 0; i < p.grid.cells(); ++i) mix(p.grid.data()[i]);
  mix(static_cast<std::uint64_t>(p.start.row) << 16 | static_cast<std::uint64_t>(p.start.col));
  mix(static_cast<std::uint64_t>(p.goal.row) << 16 | static_cast<std::uint64_t>(p.goal.col));
  return h;
}

void print_summary(const char* split, const nanonav::Dataset& ds, const std::string& path,
                   double gen_seconds, double save_seconds) {
  const auto hist = nanonav::action_histogram(ds);
  const double n = ds.empty() ? 1.0 : static_cast<double>(ds.size());
  std::printf("%s: %llu maps (seed %llu%s), %zu samples, mean A* path %.2f moves\n", split,
              static_cast<unsigned long long>(ds.info.num_maps),
              static_cast<unsigned long long>(ds.info.seed), ds.info.augment ? ", augmented x8" : "",
              ds.size(), ds.info.mean_path_length);
  std::printf("  actions: UP %.1f%%  DOWN %.1f%%  LEFT %.1f%%  RIGHT %.1f%%  STAY %.1f%%\n",
              100.0 * static_cast<double>(hist[0]) / n, 100.0 * static_cast<double>(hist[1]) / n,
              100.0 * static_cast<double>(hist[2]) / n, 100.0 * static_cast<double>(hist[3]) / n,
              100.0 * static_cast<double>(hist[4]) / n);
  std::printf("  %s: %s on disk, %s in memory; generated in %.2f s, saved in %.2f s\n",
              path.c_str(), human_bytes(std::filesystem::file_size(path)).c_str(),
              human_bytes(ds.bytes()).c_str(), gen_seconds, save_seconds);
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("generate_dataset",
                           "Random solvable maps + A* demonstrations -> <dir>/train.safetensors "
                           "and <dir>/test.safetensors (augmentation applies to train only)");
  // clang-format off
  options.add_options()
    ("num-train", "maps in the train split", cxxopts::value<long long>()->default_value("5000"))
    ("num-test", "maps in the test split", cxxopts::value<long long>()->default_value("500"))
    ("grid-size", "maps are N x N, N in [2, 252]", cxxopts::value<int>()->default_value("8"))
    ("obstacle-density", "fraction of blocked cells, in [0, 1)", cxxopts::value<double>()->default_value("0.2"))
    ("train-seed", "seed of the train maps", cxxopts::value<std::uint64_t>()->default_value("42"))
    ("test-seed", "seed of the test maps", cxxopts::value<std::uint64_t>()->default_value("99999"))
    ("output-dir", "folder for the two files (created if missing)", cxxopts::value<std::string>()->default_value("data"))
    ("augment", "add the 8 rotations/reflections of every train map")
    ("labels", "path (cells along A*'s path) or all-cells (every reachable cell)", cxxopts::value<std::string>()->default_value("path"))
    ("encoding", "marked (agent and goal also marked on the grid) or seed (coordinates only, as the seed)", cxxopts::value<std::string>()->default_value("marked"))
    ("threads", "OpenMP threads, 0 = all cores", cxxopts::value<int>()->default_value("0"))
    ("h,help", "show this help");
  // clang-format on
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  if (!args.unmatched().empty())
    throw nanonav::InvalidArgument("unexpected argument '" + args.unmatched().front() + "'");

  const long long num_train = args["num-train"].as<long long>();
  const long long num_test = args["num-test"].as<long long>();
  if (num_train < 0 || num_test < 0)
    throw nanonav::InvalidArgument("--num-train and --num-test must be >= 0");
  if (num_train > 0xFFFFFFFFll || num_test > 0xFFFFFFFFll)
    throw nanonav::InvalidArgument("--num-train and --num-test must be < 2^32");
  const int n = args["grid-size"].as<int>();
  if (n < 2 || n > nanonav::kMaxEncodedGridSize)
    throw nanonav::InvalidArgument("--grid-size must be in [2, 252], got " + std::to_string(n));
  const double density = args["obstacle-density"].as<double>();
  if (!(density >= 0.0 && density < 1.0))
    throw nanonav::InvalidArgument("--obstacle-density must be in [0, 1), got " + std::to_string(density));
  const int threads = args["threads"].as<int>();
  if (threads < 0) throw nanonav::InvalidArgument("--threads must be >= 0");
  const nanonav::LabelMode labels = nanonav::parse_label_mode(args["labels"].as<std::string>());
  const nanonav::Encoding encoding = nanonav::parse_encoding(args["encoding"].as<std::string>());
  const std::string dir = args["output-dir"].as<std::string>();
  std::filesystem::create_directories(dir);

  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const auto make = [&](const char* split, long long maps, std::uint64_t seed, bool augment) {
    nanonav::GenerateOptions o;
    o.num_maps = static_cast<std::uint64_t>(maps);
    o.grid_size = n;
    o.density = density;
    o.seed = seed;
    o.labels = labels;
    o.encoding = encoding;
    o.augment = augment;
    o.threads = threads;
    if (tty)
      o.progress = [split](std::uint64_t done, std::uint64_t total) {
        const int width = 40, filled = static_cast<int>(width * done / (total ? total : 1));
        std::fprintf(stderr, "\r%-5s [%s%s] %llu/%llu maps", split, std::string(static_cast<std::size_t>(filled), '#').c_str(),
                     std::string(static_cast<std::size_t>(width - filled), ' ').c_str(),
                     static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
        if (done == total) std::fprintf(stderr, "\n");
      };
    const auto t0 = Clock::now();
    nanonav::Dataset ds = nanonav::generate_dataset(o);
    const auto t1 = Clock::now();
    const std::string path = dir + "/" + split + ".safetensors";
    nanonav::save_dataset(path, ds);
    print_summary(split, ds, path, std::chrono::duration<double>(t1 - t0).count(),
                  std::chrono::duration<double>(Clock::now() - t1).count());
    return ds.info;
  };

  const auto t0 = Clock::now();
  std::printf("grid %dx%d, obstacle density %.3f, labels %s, %s encoding, %d tokens/sample, vocabulary %d\n",
              n, n, density, nanonav::to_string(labels), nanonav::to_string(encoding),
              nanonav::tokens_per_state(n), nanonav::vocab_size(n, encoding));
  make("train", num_train, args["train-seed"].as<std::uint64_t>(), args.count("augment") > 0);
  make("test", num_test, args["test-seed"].as<std::uint64_t>(), false);

  // How many test problems (map + start + goal) also occur in train: they measure memory, not
  // generalisation.
  std::unordered_set<std::uint64_t> train_set;
  train_set.reserve(static_cast<std::size_t>(num_train));
  for (long long i = 0; i < num_train; ++i)
    train_set.insert(problem_hash(nanonav::random_problem(n, n, density, args["train-seed"].as<std::uint64_t>(),
                                                          static_cast<std::uint64_t>(i))));
  long long shared = 0;
  for (long long i = 0; i < num_test; ++i)
    shared += train_set.count(problem_hash(nanonav::random_problem(
        n, n, density, args["test-seed"].as<std::uint64_t>(), static_cast<std::uint64_t>(i))));
  std::printf("test problems identical to a train problem (before augmentation): %lld of %lld\n",
              shared, num_test);
  std::printf("total %.2f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "generate_dataset: error: %s (see --help)\n", e.what());
  return 1;
}
