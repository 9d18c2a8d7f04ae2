// bench_trm: speed of the navigation TRM (training step, batch-1 latency, batch inference) and
// the fraction of the machine's FP32 FMA peak it reaches, on 1 and 2 threads.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <cxxopts.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "command_line.hpp"
#include <nanonav/nn/adamw.hpp>
#include <nanonav/trm.hpp>

using namespace nanonav;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Process CPU seconds (all threads). Other jobs on a shared machine steal wall time but not
// our CPU time, so per-CPU-second rates are what the code would do on idle cores.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// FP32 FMA peak on `threads` threads: 12 independent 16-wide FMA chains per thread (enough to
// cover FMA latency x units on current x86), in GFLOP/s.
double fma_peak(int threads, int reps = 3) {
  typedef float v16 __attribute__((vector_size(64)));
  const long iters = 20000000;
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const double c0 = cpu_seconds();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      v16 acc[12];
      const v16 a = {} , b = {};
      v16 mul = a + 0.999999f, add = b + 1e-7f;
      for (int i = 0; i < 12; ++i) acc[i] = a + static_cast<float>(i);
      for (long it = 0; it < iters; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = acc[i] * mul + add;
      for (int i = 0; i < 12; ++i)
        for (int j = 0; j < 16; ++j) sink += acc[i][j];
    }
    const double s = (cpu_seconds() - c0) / threads;  // per-thread CPU time: the idle-machine rate
    best = std::max(best, threads * iters * 12.0 * 16 * 2 / s / 1e9);
    if (sink == 12345.0f) std::printf(" ");
  }
  return best;
}

// Forward FLOPs of one sample (multiply-adds of the GEMMs counted as 2; elementwise ignored).
double forward_flops(const TrmConfig& c) {
  const double T = c.tokens(), D = c.dim;
  const double block = 2 * (2 * 4 * D * T * D) + 2 * (2 * T * D * (D / 2));
  const double head = 2 * D * D + 2 * D * 5;
  return c.recursion * c.depth * block + head;
}

std::vector<std::uint8_t> random_tokens(const TrmConfig& c, int batch, Rng& rng) {
  std::vector<std::uint8_t> t;
  const int T = c.tokens();
  for (int i = 0; i < batch; ++i)
    for (int k = 0; k < T; ++k)
      t.push_back(static_cast<std::uint8_t>(k < T - 4 ? 1 + rng.below(2) : 3 + rng.below(c.grid_size)));
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_config(int dim, int depth, int chunk, const std::vector<int>& thread_counts,
                  const std::vector<double>& peaks, double min_seconds, int windows) {
  TrmConfig c;
  c.dim = dim;
  c.depth = depth;
  c.recursion = 8;
  c.dropout = 0.1;
  Trm<float> model(c);
  model.init(1);
  Rng rng(2);
  const int batch = 64;
  const std::vector<std::uint8_t> tokens = random_tokens(c, 256, rng);
  std::vector<std::uint8_t> masks(256);
  for (auto& m : masks) m = static_cast<std::uint8_t>(1u << rng.below(5));

  // Check against the reference path (the double model) before timing anything.
  {
    Trm<double> ref(c);
    std::vector<nn::Param<double>*> dst;
    ref.for_each_param([&](nn::Param<double>& p) { dst.push_back(&p); });
    std::size_t i = 0;
    model.for_each_param([&](const nn::Param<float>& p) { dst[i++]->value = p.value.cast<double>(); });
    TrmWorkspace<double> wd;
    TrmWorkspace<float> wf;
    nn::Mat<double> ld;
    nn::Mat<float> lf;
    trm_logits(ref, tokens.data(), 8, wd, ld);
    trm_logits(model, tokens.data(), 8, wf, lf);
    const double err = (lf.cast<double>() - ld).cwiseAbs().maxCoeff();
    if (!(err < 1e-3 * (1 + ld.cwiseAbs().maxCoeff()))) {
      std::fprintf(stderr, "reference check FAILED: float vs double logits differ by %g\n", err);
      std::exit(1);
    }
    std::printf("dim %d depth %d: %zu params, micro-batch %d, reference check ok (max |float - double| = %.2e)\n",
                dim, depth, model.num_params(), chunk > 0 ? chunk : default_micro_batch(c), err);
  }
  const double fwd = forward_flops(c);
  std::printf("  analytic forward FLOPs/sample %.1f M, training (fwd + bwd) %.1f M\n", fwd / 1e6,
              3 * fwd / 1e6);

  for (std::size_t ti = 0; ti < thread_counts.size(); ++ti) {
    const int th = thread_counts[ti];
#ifdef _OPENMP
    omp_set_num_threads(th);
#endif
    // training: forward + backward + clip + AdamW, batch 64
    TrmTrainer<float> trainer(model, th, chunk);
    nn::AdamW<float> opt;
    int steps = 0;
    auto step = [&]() {
      model.zero_grad();
      trainer.loss_and_grad(tokens.data() + (steps % 4) * batch * c.tokens(), masks.data() + (steps % 4) * batch,
                            nullptr, batch, static_cast<std::uint64_t>(steps));
      nn::clip_grad_norm(model, 1.0);
      opt.step(model, 1e-4);
      ++steps;
    };
    step();
    step();
    // Training is timed in `windows` windows, with the FMA peak measured again before each and
    // after the last: on a shared machine the speed of both drifts, and a window's fraction of
    // the peak is then taken against the peaks measured next to it (their mean).
    std::vector<double> win_sps, win_cpu_sps, win_frac;
    double around = fma_peak(th, 1);
    for (int w = 0; w < windows; ++w) {
      steps = 0;
      const auto t0 = Clock::now();
      const double c0 = cpu_seconds();
      while (seconds_since(t0) < min_seconds || steps < 3) step();
      win_sps.push_back(steps * batch / seconds_since(t0));
      win_cpu_sps.push_back(steps * batch / ((cpu_seconds() - c0) / th));
      const double after = fma_peak(th, 1);
      win_frac.push_back(win_cpu_sps.back() * 3 * fwd / 1e9 / (0.5 * (around + after)));
      around = after;
    }
    const double train_sps = median(win_sps);
    const double train_cpu_sps = median(win_cpu_sps);
    const double train_gflops = train_cpu_sps * 3 * fwd / 1e9;

    // batch-1 latency (median)
    TrmWorkspace<float> ws;
    nn::Mat<float> logits;
    trm_logits(model, tokens.data(), 1, ws, logits);
    std::vector<double> lat;
    auto t0 = Clock::now();
    double c0 = cpu_seconds();
    while (seconds_since(t0) < min_seconds || lat.size() < 20) {
      const auto t1 = Clock::now();
      trm_logits(model, tokens.data() + (lat.size() % 256) * c.tokens(), 1, ws, logits);
      lat.push_back(seconds_since(t1) * 1e6);
    }
    std::nth_element(lat.begin(), lat.begin() + lat.size() / 2, lat.end());
    const double lat_us = lat[lat.size() / 2];
    const double lat_cpu_us = (cpu_seconds() - c0) * 1e6 / lat.size();

    // batch-256 inference
    nn::Mat<float> l256;
    trainer.logits(tokens.data(), 256, l256);
    int runs = 0;
    t0 = Clock::now();
    c0 = cpu_seconds();
    while (seconds_since(t0) < min_seconds || runs < 3) {
      trainer.logits(tokens.data(), 256, l256);
      ++runs;
    }
    const double inf_sps = runs * 256 / seconds_since(t0);
    const double inf_cpu_sps = runs * 256 / ((cpu_seconds() - c0) / th);
    const double inf_gflops = inf_cpu_sps * fwd / 1e9;
    std::printf("  %d thread%s, wall clock: training %.0f samples/s | batch-1 latency %.0f us (median)"
                " | batch-256 inference %.0f samples/s\n",
                th, th == 1 ? " " : "s", train_sps, lat_us, inf_sps);
    std::printf("  %d thread%s, per CPU time: training %.0f samples/s = %.1f GFLOP/s = %.0f%% of FMA peak %.0f"
                " | batch-1 %.0f us | batch-256 %.0f samples/s = %.1f GFLOP/s = %.0f%%\n",
                th, th == 1 ? " " : "s", train_cpu_sps, train_gflops, 100 * train_gflops / peaks[ti], peaks[ti],
                lat_cpu_us, inf_cpu_sps, inf_gflops, 100 * inf_gflops / peaks[ti]);
    std::printf("  %d thread%s, training windows (per CPU time):", th, th == 1 ? " " : "s");
    for (int w = 0; w < windows; ++w) std::printf("%s %.0f", w ? "," : "", win_cpu_sps[static_cast<std::size_t>(w)]);
    std::printf(" samples/s; of the FMA peak measured around each:");
    for (int w = 0; w < windows; ++w) std::printf("%s %.0f%%", w ? "," : "", 100 * win_frac[static_cast<std::size_t>(w)]);
    std::printf(" (median %.0f%%)\n", 100 * median(win_frac));
  }
}

}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("bench_trm", "Speed of the navigation TRM (recursion 8, batch 64)");
  options.add_options()("seconds", "minimum seconds per measurement (and per training window)", cxxopts::value<double>()->default_value("3"))(
      "threads", "thread counts to measure", cxxopts::value<std::vector<int>>()->default_value("1,2"))(
      "chunk", "samples per micro-batch; 0 = the trainer's default for the width (4 at dim 64, 2 at dim 128)",
      cxxopts::value<int>()->default_value("0"))(
      "windows", "training windows per thread count (median reported)", cxxopts::value<int>()->default_value("3"))(
      "quick", "only dim 64 / depth 2")("h,help", "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  print_command(argc, argv);
  const double secs = args["seconds"].as<double>();
  const std::vector<int> threads = args["threads"].as<std::vector<int>>();
  const int windows = args["windows"].as<int>();
  const int chunk = args["chunk"].as<int>();
  if (!(secs > 0) || secs > 3600) throw std::invalid_argument("--seconds must be in (0, 3600]");
  if (windows < 1 || windows > 100) throw std::invalid_argument("--windows must be in 1..100");
  if (chunk < 0 || chunk > 64) throw std::invalid_argument("--chunk must be in 0..64 (0: the trainer's default)");
  if (threads.empty()) throw std::invalid_argument("--threads needs at least one count");
  for (int t : threads)
    if (t < 1 || t > 1024) throw std::invalid_argument("--threads: each count must be in 1..1024");
  std::vector<double> peaks;
  for (int t : threads) {
    peaks.push_back(fma_peak(t));
    std::printf("FP32 FMA peak, %d thread%s: %.1f GFLOP/s (measured)\n", t, t == 1 ? "" : "s", peaks.back());
  }
  bench_config(64, 2, chunk, threads, peaks, secs, windows);
  if (!args.count("quick")) bench_config(128, 3, chunk, threads, peaks, secs, windows);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_trm: %s\n", e.what());
  return 1;
}
