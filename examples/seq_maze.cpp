// The notebook's maze demo, and the test it never ran: can the sequence TRM emit the path
// through a maze it has not seen?
//
//   seq_maze --memorise          one maze, 2000 Adam steps, decoded back (the notebook's demo)
//   seq_maze [--train 4000 ...]  train on many mazes, decode unseen ones, report valid /
//                                optimal shares and the length ratio, draw a few as PNG
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include <nanonav/image.hpp>
#include <nanonav/maze.hpp>
#include <nanonav/nn/adamw.hpp>
#include <nanonav/nn/schedule.hpp>
#include <nanonav/seq_trm.hpp>

using namespace nanonav;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct DecodeReport {
  int n = 0, valid = 0, optimal = 0;
  double ratio_sum = 0.0;  // decoded moves / optimal moves, over valid paths
  std::vector<std::vector<Pos>> paths;
  std::vector<PathCheck> checks;
};

DecodeReport decode_all(const SeqTrm<float>& model, const std::vector<MazeProblem>& set,
                        bool constrained, bool no_revisit, int threads) {
  DecodeReport r;
  r.n = static_cast<int>(set.size());
  r.paths.resize(set.size());
  r.checks.resize(set.size());
  MazeDecodeOptions opt;
  opt.constrained = constrained;
  opt.no_revisit = no_revisit;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < r.n; ++i) {
#ifdef _OPENMP
    omp_set_num_threads(1);  // no nested Eigen parallelism inside a decoding thread
#endif
    const MazeProblem& mp = set[static_cast<std::size_t>(i)];
    r.paths[static_cast<std::size_t>(i)] = decode_maze_path(model, mp.problem, opt);
    r.checks[static_cast<std::size_t>(i)] = check_path(mp.problem, r.paths[static_cast<std::size_t>(i)],
                                                       static_cast<int>(mp.path.size()));
  }
  for (const PathCheck& c : r.checks) {
    r.valid += c.valid;
    r.optimal += c.optimal;
    if (c.valid) r.ratio_sum += (c.length - 1.0) / std::max(1, c.optimal_length - 1);
  }
  return r;
}

void print_report(const char* name, const DecodeReport& r) {
  std::printf("  %-34s valid %5.1f%%  optimal %5.1f%%  mean length ratio %s\n", name,
              100.0 * r.valid / std::max(1, r.n), 100.0 * r.optimal / std::max(1, r.n),
              r.valid ? std::to_string(r.ratio_sum / r.valid).substr(0, 5).c_str() : "n/a");
}

// One panel per maze: A* path (blue, shifted) and the decoded path (orange); a cross marks the
// first cell where the decoded path went wrong.
Image draw_panels(const std::vector<MazeProblem>& set, const DecodeReport& r, int count) {
  std::vector<Image> panels;
  for (int i = 0; i < std::min<int>(count, static_cast<int>(set.size())); ++i) {
    const MazeProblem& mp = set[static_cast<std::size_t>(i)];
    GridPanel panel(mp.problem.grid, 16);
    panel.draw_path(mp.path, palette::kAStar, -0.12);
    std::vector<Pos> shown;
    for (Pos q : r.paths[static_cast<std::size_t>(i)]) {
      if (!mp.problem.grid.in_bounds(q)) break;
      shown.push_back(q);
    }
    panel.draw_path(shown, palette::kModel, 0.12);
    if (!r.checks[static_cast<std::size_t>(i)].valid && !shown.empty()) panel.cross_cell(shown.back(), palette::kError);
    panel.mark_cell(mp.problem.start, palette::kStart);
    panel.mark_cell(mp.problem.goal, palette::kGoal);
    panels.push_back(panel.image());
  }
  return side_by_side(panels);
}

std::vector<MazeProblem> make_set(const std::string& kind, int n, int size, double density,
                                  std::uint64_t seed, int min_path) {
  std::vector<MazeProblem> set(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    MazeKind k = MazeKind::Perfect;
    if (kind == "walls" || (kind == "mix" && i % 2 == 1)) k = MazeKind::RandomWalls;
    set[static_cast<std::size_t>(i)] =
        random_maze_problem(k, size, size, seed, static_cast<std::uint64_t>(i), density, min_path);
  }
  return set;
}

int run_memorise(const cxxopts::ParseResult& a) {
  const int size = a["size"].as<int>();
  Rng rng(a["seed"].as<std::uint64_t>());
  MazeProblem mp;
  mp.problem.grid = perfect_maze(size, size, rng);
  mp.problem.start = {0, 0};
  const int far = (size - 1) / 2 * 2;  // the last room of an even- or odd-sized maze
  mp.problem.goal = {far, far};
  mp.path = astar(mp.problem.grid, mp.problem.start, mp.problem.goal).path;
  const int steps = a["steps"].as<int>() > 0 ? a["steps"].as<int>() : 2000;
  SeqTrm<float> model(SeqTrmConfig{maze_vocab(size, size), a["dim"].as<int>(), a["recursions"].as<int>()});
  model.init(a["seed"].as<std::uint64_t>() + 1);
  nn::AdamWConfig adam;
  adam.weight_decay = a["wd"].as<double>();
  nn::AdamW<float> opt(adam);
  SeqTrainer<float> trainer(model, 1);
  const std::vector<SeqExample> batch{maze_example(mp.problem, mp.path)};
  std::printf("memorise: one %dx%d perfect maze, path of %zu cells, sequence of %zu tokens, %zu parameters\n",
              size, size, mp.path.size(), batch[0].tokens.size(), model.num_params());
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 1; s <= steps; ++s) {
    model.zero_grad();
    const SeqStats st = trainer.loss_and_grad(batch);
    opt.step(model, a["lr"].as<double>());
    if (s % 200 == 0 || s == steps)
      std::printf("step %5d/%d  loss %.4f  token accuracy %.3f  (%.1f s)\n", s, steps, st.loss,
                  static_cast<double>(st.correct) / st.count, seconds_since(t0));
  }
  const std::vector<Pos> path = decode_maze_path(model, mp.problem);
  const PathCheck c = check_path(mp.problem, path, static_cast<int>(mp.path.size()));
  std::printf("decoded %zu cells (A*: %zu); valid %s, optimal %s; equals the A* path: %s\n",
              path.size(), mp.path.size(), c.valid ? "yes" : ("no: " + c.reason).c_str(),
              c.optimal ? "yes" : "no", path == mp.path ? "yes" : "no");
  std::printf("%s", ascii_side_by_side("A*", ascii_grid(mp.problem.grid, mp.path, mp.problem.start, mp.problem.goal),
                                       "decoded", ascii_grid(mp.problem.grid, c.valid ? path : std::vector<Pos>{},
                                                             mp.problem.start, mp.problem.goal))
                        .c_str());
  return path == mp.path ? 0 : 2;
}

int run_general(const cxxopts::ParseResult& a) {
  const int size = a["size"].as<int>(), threads = a["threads"].as<int>();
  const std::string kind = a["kind"].as<std::string>();
  if (kind != "perfect" && kind != "walls" && kind != "mix")
    throw InvalidArgument("--kind must be perfect, walls or mix, got " + kind);
  const double density = a["density"].as<double>();
  const std::uint64_t seed = a["seed"].as<std::uint64_t>();
  const int min_path = a["min-path"].as<int>();
  const auto t_data = std::chrono::steady_clock::now();
  const std::vector<MazeProblem> train = make_set(kind, a["train"].as<int>(), size, density, seed, min_path);
  // Unseen mazes: another seed's streams (a maze repeated by chance is checked below).
  const std::vector<MazeProblem> test = make_set(kind, a["test"].as<int>(), size, density, seed + 1000003, min_path);
  int repeats = 0;
  for (const auto& t : test)
    for (const auto& s : train) repeats += t.problem.grid == s.problem.grid && t.problem.start == s.problem.start &&
                                           t.problem.goal == s.problem.goal;
  std::vector<SeqExample> examples;
  double mean_len = 0.0;
  for (const auto& mp : train) {
    examples.push_back(maze_example(mp.problem, mp.path));
    mean_len += static_cast<double>(mp.path.size()) / static_cast<double>(train.size());
  }
  std::printf("data: %zu training and %zu unseen %dx%d '%s' mazes (density %.2f), mean path %.1f cells, "
              "%d test problems also in training, %.1f s\n",
              train.size(), test.size(), size, size, kind.c_str(), density, mean_len, repeats,
              seconds_since(t_data));

  SeqTrm<float> model(SeqTrmConfig{maze_vocab(size, size), a["dim"].as<int>(), a["recursions"].as<int>()});
  model.init(seed + 1);
  nn::AdamWConfig adam;
  adam.weight_decay = a["wd"].as<double>();
  nn::AdamW<float> opt(adam);
  SeqTrainer<float> trainer(model, threads);
  const int B = a["batch"].as<int>(), epochs = a["epochs"].as<int>();
  if (B < 1 || epochs < 0) throw InvalidArgument("--batch must be >= 1 and --epochs >= 0");
  const int per_epoch = (static_cast<int>(examples.size()) + B - 1) / B;
  const int total = a["steps"].as<int>() > 0 ? a["steps"].as<int>() : per_epoch * epochs;
  std::printf("model: d %d, recursions %d, %zu parameters; %d steps of batch %d, AdamW lr %g (cosine), "
              "wd %g, clip %g, %d thread(s)\n",
              model.config().dim, model.config().recursions, model.num_params(), total, B,
              a["lr"].as<double>(), adam.weight_decay, a["clip"].as<double>(), threads);
  std::vector<SeqExample> test_examples;
  for (const auto& mp : test) test_examples.push_back(maze_example(mp.problem, mp.path));

  Rng shuffle(seed + 7);
  std::vector<std::size_t> order(examples.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::size_t cursor = order.size();
  std::vector<SeqExample> batch;
  const auto t0 = std::chrono::steady_clock::now();
  double loss_acc = 0.0, tokens = 0.0;
  int correct = 0, count = 0;
  const int log_every = std::max(1, a["log-every"].as<int>());
  for (int s = 0; s < total; ++s) {
    batch.clear();
    while (static_cast<int>(batch.size()) < B) {
      if (cursor == order.size()) {
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle.below(i)]);
        cursor = 0;
      }
      batch.push_back(examples[order[cursor++]]);
      tokens += static_cast<double>(batch.back().tokens.size() - 1);
    }
    model.zero_grad();
    const SeqStats st = trainer.loss_and_grad(batch);
    nn::clip_grad_norm(model, a["clip"].as<double>());
    opt.step(model, nn::cosine_lr(a["lr"].as<double>(), s, total, std::min(100, total / 10)));
    loss_acc += st.loss;
    correct += st.correct;
    count += st.count;
    if ((s + 1) % log_every == 0 || s + 1 == total) {
      const SeqStats te = trainer.loss(std::vector<SeqExample>(test_examples.begin(),
                                                               test_examples.begin() + std::min<std::size_t>(64, test_examples.size())));
      std::printf("step %6d/%d  epoch %5.2f  train loss %.4f  path-token acc %.3f | unseen loss %.4f acc %.3f"
                  "  | %.0f tokens/s\n",
                  s + 1, total, (s + 1.0) * B / examples.size(), loss_acc / log_every,
                  static_cast<double>(correct) / std::max(1, count), te.loss,
                  static_cast<double>(te.correct) / std::max(1, te.count), tokens / seconds_since(t0));
      std::fflush(stdout);
      loss_acc = 0.0;
      correct = count = 0;
    }
  }
  const double train_s = seconds_since(t0);
  std::printf("trained in %.1f s (%.0f tokens/s)\n", train_s, tokens / std::max(1e-9, train_s));

  const int n_eval_train = std::min<int>(static_cast<int>(train.size()), static_cast<int>(test.size()));
  const std::vector<MazeProblem> train_eval(train.begin(), train.begin() + n_eval_train);
  std::printf("greedy decoding (valid = contiguous, no wall, ends at the goal; ratio = moves / A* moves):\n");
  const DecodeReport tr_free = decode_all(model, train_eval, false, false, threads);
  print_report("training mazes, free decoding", tr_free);
  const DecodeReport tr_con = decode_all(model, train_eval, true, false, threads);
  print_report("training mazes, constrained", tr_con);
  const DecodeReport te_free = decode_all(model, test, false, false, threads);
  print_report("UNSEEN mazes, free decoding", te_free);
  const DecodeReport te_con = decode_all(model, test, true, false, threads);
  print_report("UNSEEN mazes, constrained", te_con);
  const DecodeReport te_nr = decode_all(model, test, true, true, threads);
  print_report("UNSEEN mazes, constrained+no-revisit", te_nr);
  const auto pct = [](int k, int n) { return 100.0 * k / std::max(1, n); };
  const auto ratio = [](const DecodeReport& r) { return r.valid ? r.ratio_sum / r.valid : 0.0; };
  std::printf("RESULT d=%d rec=%d kind=%s train=%zu steps=%d | unseen free: valid %.1f%% opt %.1f%% ratio %.3f"
              " | constrained: valid %.1f%% opt %.1f%% ratio %.3f | no-revisit: valid %.1f%% opt %.1f%% ratio %.3f"
              " | train free: valid %.1f%% opt %.1f%%\n",
              model.config().dim, model.config().recursions, kind.c_str(), train.size(), total,
              pct(te_free.valid, te_free.n), pct(te_free.optimal, te_free.n), ratio(te_free),
              pct(te_con.valid, te_con.n), pct(te_con.optimal, te_con.n), ratio(te_con),
              pct(te_nr.valid, te_nr.n), pct(te_nr.optimal, te_nr.n), ratio(te_nr),
              pct(tr_free.valid, tr_free.n), pct(tr_free.optimal, tr_free.n));
  const std::string png = a["png"].as<std::string>();
  if (!png.empty()) {
    draw_panels(test, a["constrained-png"].as<bool>() ? te_con : te_free, 4).save_png(png);
    std::printf("wrote %s (4 unseen mazes: blue A*, orange decoded, cross = where it failed)\n", png.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("seq_maze", "The notebook's sequence TRM on 20x20 mazes");
  options.add_options()
    ("memorise", "the notebook's demo: one maze, trained and decoded back")
    ("size", "maze side", cxxopts::value<int>()->default_value("20"))
    ("kind", "training/test mazes: perfect, walls or mix", cxxopts::value<std::string>()->default_value("mix"))
    ("density", "wall density of random-wall mazes", cxxopts::value<double>()->default_value("0.3"))
    ("min-path", "shortest path (cells) of a drawn problem", cxxopts::value<int>()->default_value("2"))
    ("train", "training mazes", cxxopts::value<int>()->default_value("4000"))
    ("test", "unseen test mazes", cxxopts::value<int>()->default_value("200"))
    ("dim", "model width d", cxxopts::value<int>()->default_value("64"))
    ("recursions", "block applications per token", cxxopts::value<int>()->default_value("1"))
    ("epochs", "passes over the training mazes", cxxopts::value<int>()->default_value("3"))
    ("steps", "optimiser steps (overrides --epochs; memorise: default 2000)", cxxopts::value<int>()->default_value("0"))
    ("batch", "sequences per step", cxxopts::value<int>()->default_value("16"))
    ("lr", "peak learning rate", cxxopts::value<double>()->default_value("0.001"))
    ("wd", "AdamW weight decay (0 = Adam, as the notebook)", cxxopts::value<double>()->default_value("0"))
    ("clip", "global gradient-norm clip (0 = off)", cxxopts::value<double>()->default_value("1.0"))
    ("threads", "OpenMP threads", cxxopts::value<int>()->default_value("1"))
    ("log-every", "steps between progress lines", cxxopts::value<int>()->default_value("50"))
    ("png", "picture of 4 decoded unseen mazes ('' = none)", cxxopts::value<std::string>()->default_value("seq_maze.png"))
    ("constrained-png", "draw the constrained decoding instead of the free one")
    ("seed", "seed of mazes and initialisation", cxxopts::value<std::uint64_t>()->default_value("1"))
    ("h,help", "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  if (args["size"].as<int>() < 3 || args["size"].as<int>() > 64) throw InvalidArgument("--size must be in 3..64");
  return args.count("memorise") ? run_memorise(args) : run_general(args);
} catch (const std::exception& e) {
  std::fprintf(stderr, "seq_maze: %s\n", e.what());
  return 1;
}
