// train: behavioural cloning of A* into the navigation TRM, on the CPU.
//   train --train-path data/train.safetensors --val-path data/test.safetensors --epochs 30
// Ctrl-C finishes the current step, saves checkpoints/last.safetensors and exits; --resume
// continues from it to the same result as an uninterrupted run.
#include <cxxopts.hpp>
#include <nanonav/detail/sysinfo.hpp>
#include <nanonav/image.hpp>
#include <nanonav/train.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

using namespace nanonav;

namespace {
std::atomic<bool> g_stop{false};  // set by SIGINT; read by the trainer after every step
extern "C" void on_sigint(int) { g_stop.store(true); }

void write_curves(const std::vector<EpochRecord>& h, const std::string& path) {
  Series tl{"train loss", {}, palette::kAStar}, vl{"val loss", {}, palette::kModel};
  Series ta{"train acc", {}, palette::kAStar}, va{"val acc", {}, palette::kModel};
  for (const auto& r : h) {
    tl.y.push_back(r.train_loss);
    vl.y.push_back(r.val_loss);
    ta.y.push_back(r.train_acc);
    va.y.push_back(r.val_acc);
  }
  side_by_side({line_chart("loss", {tl, vl}), line_chart("accuracy (optimal action)", {ta, va})})
      .save_png(path);
}
}  // namespace

int main(int argc, char** argv) try {
  cxxopts::Options options("train", "Train the navigation TRM by imitating A* (CPU, OpenMP)");
  options.add_options()
      ("train-path", "training set", cxxopts::value<std::string>()->default_value("data/train.safetensors"))
      ("val-path", "validation set", cxxopts::value<std::string>()->default_value("data/test.safetensors"))
      ("checkpoint-dir", "where best/last checkpoints, metrics.csv and curves.png go",
       cxxopts::value<std::string>()->default_value("checkpoints"))
      ("grid-size", "map side N (0: take it from the dataset)", cxxopts::value<int>()->default_value("0"))
      ("dim", "embedding width", cxxopts::value<int>()->default_value("64"))
      ("depth", "mixer blocks", cxxopts::value<int>()->default_value("2"))
      ("recursion", "applications of the mixer network", cxxopts::value<int>()->default_value("8"))
      ("grad-last-k", "gradient through only the last k applications (0: all)", cxxopts::value<int>()->default_value("0"))
      ("input-injection", "add the embedding to the input of every application after the first (not in the seed)")
      ("aux-distance", "weight of an auxiliary loss: a per-cell head regresses each cell's distance to the goal (0: off; not in the seed)",
       cxxopts::value<double>()->default_value("0"))
      ("dropout", "dropout probability", cxxopts::value<double>()->default_value("0.1"))
      ("batch-size", "samples per step", cxxopts::value<int>()->default_value("64"))
      ("lr", "peak learning rate", cxxopts::value<double>()->default_value("0.001"))
      ("min-lr", "cosine floor", cxxopts::value<double>()->default_value("0"))
      ("warmup", "linear warm-up steps", cxxopts::value<int>()->default_value("0"))
      ("weight-decay", "AdamW weight decay", cxxopts::value<double>()->default_value("0.01"))
      ("exempt-norms", "no weight decay on biases, norm gains and embeddings")
      ("clip", "global gradient-norm clip (0: off)", cxxopts::value<double>()->default_value("1.0"))
      ("epochs", "maximum epochs", cxxopts::value<int>()->default_value("100"))
      ("patience", "early stopping patience in epochs (0: off)", cxxopts::value<int>()->default_value("15"))
      ("label-mode", "mask (all optimal actions) or single (the A* action)", cxxopts::value<std::string>()->default_value("mask"))
      ("threads", "OpenMP threads", cxxopts::value<int>()->default_value("2"))
      ("seed", "seed of initialisation, shuffling and dropout", cxxopts::value<std::uint64_t>()->default_value("0"))
      ("time-limit", "stop after this many minutes (saves last; 0: none)", cxxopts::value<double>()->default_value("0"))
      ("time-budget", "fit the whole run (schedule and final validation) into this many minutes: the speed of the first 100 steps fixes the step count (0: off)",
       cxxopts::value<double>()->default_value("0"))
      ("steps", "the run's length in steps, schedule included (0: all epochs); replays a --time-budget run", cxxopts::value<std::int64_t>()->default_value("0"))
      ("resume", "continue from this `last` checkpoint", cxxopts::value<std::string>())
      ("h,help", "show this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::cout << options.help() << "\n";
    return 0;
  }
  const std::string mode = args["label-mode"].as<std::string>();
  if (mode != "mask" && mode != "single") throw InvalidArgument("--label-mode must be mask or single, got '" + mode + "'");
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset train = load_dataset(args["train-path"].as<std::string>());
  const Dataset val = load_dataset(args["val-path"].as<std::string>());

  TrainOptions o;
  o.model.grid_size = args["grid-size"].as<int>() ? args["grid-size"].as<int>() : train.info.grid_size;
  o.model.encoding = train.info.encoding;  // the model reads the tokens its data was written with
  o.model.dim = args["dim"].as<int>();
  o.model.depth = args["depth"].as<int>();
  o.model.recursion = args["recursion"].as<int>();
  o.model.grad_last_k = args["grad-last-k"].as<int>();
  o.model.input_injection = args.count("input-injection") > 0;
  o.model.aux_distance = args["aux-distance"].as<double>();
  o.model.dropout = args["dropout"].as<double>();
  o.batch_size = args["batch-size"].as<int>();
  o.lr = args["lr"].as<double>();
  o.min_lr = args["min-lr"].as<double>();
  o.warmup_steps = args["warmup"].as<int>();
  o.weight_decay = args["weight-decay"].as<double>();
  o.exempt_no_decay = args.count("exempt-norms") > 0;
  o.clip = args["clip"].as<double>();
  o.epochs = args["epochs"].as<int>();
  o.patience = args["patience"].as<int>();
  o.threads = args["threads"].as<int>();
  o.seed = args["seed"].as<std::uint64_t>();
  o.time_limit_seconds = 60.0 * args["time-limit"].as<double>();
  o.time_budget_seconds = 60.0 * args["time-budget"].as<double>();
  o.total_steps = args["steps"].as<std::int64_t>();
  o.checkpoint_dir = args["checkpoint-dir"].as<std::string>();
  o.mask_labels = mode == "mask";

  Trainer trainer(o, train, val);
  if (args.count("resume")) trainer.resume(args["resume"].as<std::string>());
  std::printf("nanonav train: %zu train / %zu val samples of %dx%d maps (%.1f MiB of tokens)\n", train.size(),
              val.size(), o.model.grid_size, o.model.grid_size, (train.bytes() + val.bytes()) / 1048576.0);
  std::printf("model: %s encoding, dim %d, depth %d, recursion %d%s, grad-last-k %d, dropout %.2f, aux distance %g: %zu parameters\n",
              to_string(o.model.encoding), o.model.dim, o.model.depth, o.model.recursion,
              o.model.input_injection ? " with input injection" : "", o.model.grad_last_k, o.model.dropout,
              o.model.aux_distance, trainer.model().num_params());
  std::printf("training: batch %d, lr %g (cosine to %g, warm-up %d), wd %g, clip %g, labels %s, %d threads, %lld steps/epoch, %lld steps%s\n",
              o.batch_size, o.lr, o.min_lr, o.warmup_steps, o.weight_decay, o.clip, mode.c_str(), o.threads,
              static_cast<long long>(trainer.batches_per_epoch()), static_cast<long long>(trainer.total_steps()),
              o.time_budget_seconds > 0 ? " at most (time budget)" : "");
  std::fflush(stdout);

  std::signal(SIGINT, on_sigint);
  detail::ProgressBar bar("train");
  // Without a terminal (logs, CI) a plain progress line every 30 s replaces the bar.
  const bool tty = detail::stderr_is_terminal();
  auto last_line = std::chrono::steady_clock::now();
  bool plan_shown = false;
  const StopReason why = trainer.run(
      &g_stop,
      [&](const TrainProgress& p) {
        if (o.time_budget_seconds > 0 && trainer.budget_planned() && !plan_shown) {
          plan_shown = true;
          bar.finish();
          std::printf("time budget %.1f min: %.0f samples/s over the first %lld steps, so the run is %lld steps "
                      "(%.1f%% of the data; replay it with --steps %lld)\n",
                      o.time_budget_seconds / 60.0, p.samples_per_second,
                      static_cast<long long>(TrainOptions::kBudgetProbeSteps),
                      static_cast<long long>(trainer.total_steps()),
                      100.0 * static_cast<double>(trainer.total_steps()) /
                          static_cast<double>(trainer.batches_per_epoch() * o.epochs),
                      static_cast<long long>(trainer.total_steps()));
          std::fflush(stdout);
        }
        if (!tty) {
          const auto now = std::chrono::steady_clock::now();
          if (now - last_line >= std::chrono::seconds(30)) {
            last_line = now;
            std::printf("  epoch %d: %lld/%lld batches, %.0f samples/s, loss %.4f\n", p.epoch,
                        static_cast<long long>(p.batch), static_cast<long long>(p.batches), p.samples_per_second, p.loss);
            std::fflush(stdout);
          }
          return;
        }
        char suffix[64];
        std::snprintf(suffix, sizeof suffix, "epoch %d loss %.4f", p.epoch, p.loss);
        bar.update(static_cast<double>(p.batch), static_cast<double>(p.batches), "batch", suffix);
      },
      [&](const EpochRecord& r) {
        bar.finish();
        std::printf("%s\n", format_epoch_line(r, o.epochs).c_str());
        std::fflush(stdout);
        write_curves(trainer.history(), o.checkpoint_dir + "/curves.png");
      });
  bar.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("stopped: %s after %lld steps, %.1f s; peak RSS %.0f MiB\n", to_string(why),
              static_cast<long long>(trainer.step()), secs, detail::peak_rss_mib());
  std::printf("checkpoints: %s (best), %s (last); metrics: %s, %s/curves.png\n", trainer.best_path().c_str(),
              trainer.last_path().c_str(), trainer.metrics_path().c_str(), o.checkpoint_dir.c_str());
  if (why == StopReason::Interrupted) std::printf("resume with: --resume %s (and the same flags)\n", trainer.last_path().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train: error: %s\n", e.what());
  return 1;
}
