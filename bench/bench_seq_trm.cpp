// Training and decoding speed of the sequence TRM on 20x20 maze sequences: tokens per second
// for forward + backward-through-time (+ AdamW), on 1 and 2 threads, and decode steps per
// second with the carried state. Before timing, it checks the float gradient against the
// double model on a short sequence.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

#include <cxxopts.hpp>

#include "command_line.hpp"
#include <nanonav/maze.hpp>
#include <nanonav/nn/adamw.hpp>
#include <nanonav/seq_trm.hpp>

using namespace nanonav;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Float and double gradients of the same model on the same batch must agree.
double float_vs_double(const std::vector<SeqExample>& batch, const SeqTrmConfig& cfg) {
  SeqTrm<double> md(cfg);
  md.init(5);
  SeqTrm<float> mf(cfg);
  std::vector<nn::Param<double>*> dp;
  md.for_each_param([&](nn::Param<double>& p) { dp.push_back(&p); });
  std::size_t slot = 0;
  mf.for_each_param([&](nn::Param<float>& p) { p.value = dp[slot++]->value.cast<float>(); });
  md.zero_grad();
  mf.zero_grad();
  SeqTrainer<double>(md, 1).loss_and_grad(batch);
  SeqTrainer<float>(mf, 1).loss_and_grad(batch);
  double worst = 0.0, scale = 0.0;
  slot = 0;
  mf.for_each_param([&](const nn::Param<float>& p) {
    const nn::Mat<double>& g = dp[slot++]->grad;
    worst = std::max(worst, (p.grad.cast<double>() - g).cwiseAbs().maxCoeff());
    scale = std::max(scale, g.cwiseAbs().maxCoeff());
  });
  return worst / std::max(scale, 1e-30);
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("bench_seq_trm", "Speed of the sequence TRM on 20x20 maze sequences");
  options.add_options()
    ("dim", "model widths", cxxopts::value<std::vector<int>>()->default_value("64,128"))
    ("recursions", "block applications per token", cxxopts::value<int>()->default_value("1"))
    ("batch", "sequences per step", cxxopts::value<int>()->default_value("16"))
    ("steps", "timed steps per setting", cxxopts::value<int>()->default_value("5"))
    ("threads", "thread counts", cxxopts::value<std::vector<int>>()->default_value("1,2"))
    ("h,help", "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  print_command(argc, argv);
  const int B = args["batch"].as<int>(), steps = args["steps"].as<int>();
  const int K = args["recursions"].as<int>();
  if (B < 1 || steps < 1) throw InvalidArgument("--batch and --steps must be >= 1");
  std::vector<SeqExample> batch;
  std::vector<MazeProblem> mazes;
  double tokens = 0.0;
  for (int i = 0; i < B; ++i) {
    mazes.push_back(random_maze_problem(i % 2 ? MazeKind::RandomWalls : MazeKind::Perfect, 20, 20, 77,
                                        static_cast<std::uint64_t>(i)));
    batch.push_back(maze_example(mazes.back().problem, mazes.back().path));
    tokens += static_cast<double>(batch.back().tokens.size() - 1);
  }
  {
    SeqExample small = batch[0];
    small.tokens.resize(40);
    small.mask.assign(39, 1);
    const double rel = float_vs_double({small}, SeqTrmConfig{maze_vocab(20, 20), 16, K});
    std::printf("check: float vs double gradient, max error / max |grad| = %.2e %s\n", rel,
                rel < 1e-3 ? "(ok)" : "(TOO LARGE)");
    if (!(rel < 1e-3)) return 2;
  }
  std::printf("batch %d maze sequences, %.0f tokens per step (%.0f per sequence), recursions %d\n", B,
              tokens, tokens / B, K);
  for (int d : args["dim"].as<std::vector<int>>()) {
    SeqTrm<float> model(SeqTrmConfig{maze_vocab(20, 20), d, K});
    model.init(1);
    for (int threads : args["threads"].as<std::vector<int>>()) {
      SeqTrainer<float> trainer(model, threads);
      nn::AdamWConfig cfg;
      nn::AdamW<float> opt(cfg);
      model.zero_grad();
      trainer.loss_and_grad(batch);  // warm-up: buffers
      double t0 = now_s();
      for (int s = 0; s < steps; ++s) {
        model.zero_grad();
        trainer.loss_and_grad(batch);
        opt.step(model, 1e-4);
      }
      const double train_s = (now_s() - t0) / steps;
      std::printf("d %4d  threads %d  training %9.0f tokens/s  (%.1f ms per step)\n", d, threads,
                  tokens / train_s, 1e3 * train_s);
    }
    // Decoding: carried state, one block step per token.
    SeqStepper<float> st(model);
    const std::vector<int> prompt = batch[0].tokens;
    double t0 = now_s();
    int fed = 0;
    while (now_s() - t0 < 0.5) {
      st.reset();
      st.feed(prompt.data(), prompt.size());
      fed += static_cast<int>(prompt.size());
    }
    const double dt = now_s() - t0;
    std::printf("d %4d  decode (carried state, 1 thread) %9.0f tokens/s; logits %s\n", d, fed / dt,
                st.logits().allFinite() ? "finite" : "NOT FINITE");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_seq_trm: %s\n", e.what());
  return 1;
}
