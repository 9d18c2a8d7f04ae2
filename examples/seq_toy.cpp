// The notebook's first demo: the sequence TRM learns [1, 2, 3, 4] -> [2, 3, 4, 5]
// (vocabulary 10, d 16, Adam lr 0.01, 100 steps) and prints the sequence it predicts.
#include <cstdio>
#include <exception>
#include <vector>

#include <cxxopts.hpp>

#include <nanonav/nn/adamw.hpp>
#include <nanonav/seq_trm.hpp>

int main(int argc, char** argv) try {
  using namespace nanonav;
  cxxopts::Options options("seq_toy", "Train the notebook's sequence TRM on [1,2,3,4] -> [2,3,4,5]");
  options.add_options()
    ("steps", "Adam steps", cxxopts::value<int>()->default_value("100"))
    ("lr", "learning rate", cxxopts::value<double>()->default_value("0.01"))
    ("dim", "model width d", cxxopts::value<int>()->default_value("16"))
    ("recursions", "block applications per token", cxxopts::value<int>()->default_value("1"))
    ("seed", "initialisation seed", cxxopts::value<std::uint64_t>()->default_value("0"))
    ("h,help", "this help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  const int steps = args["steps"].as<int>();
  if (steps < 0) throw InvalidArgument("--steps must be >= 0");

  SeqTrm<float> model(SeqTrmConfig{10, args["dim"].as<int>(), args["recursions"].as<int>()});
  model.init(args["seed"].as<std::uint64_t>());
  nn::AdamWConfig adam;
  adam.weight_decay = 0.0;  // the notebook uses plain Adam
  nn::AdamW<float> opt(adam);
  SeqTrainer<float> trainer(model, 1);
  const std::vector<SeqExample> batch{SeqExample{{1, 2, 3, 4, 5}, {1, 1, 1, 1}}};
  std::printf("Input:  [1, 2, 3, 4]\nTarget: [2, 3, 4, 5]\n");
  for (int step = 1; step <= steps; ++step) {
    model.zero_grad();
    const SeqStats st = trainer.loss_and_grad(batch);
    opt.step(model, args["lr"].as<double>());
    if (step % 10 == 0) std::printf("step %4d/%d  loss %.4f\n", step, steps, st.loss);
  }
  model.zero_grad();
  const double final_loss = trainer.loss_and_grad(batch).loss;
  nn::Mat<float> logits;
  seq_logits(model, {1, 2, 3, 4}, logits);
  std::printf("Predicted sequence: [");
  for (Eigen::Index t = 0; t < logits.rows(); ++t) {
    Eigen::Index arg = 0;
    logits.row(t).maxCoeff(&arg);
    std::printf("%s%d", t ? ", " : "", static_cast<int>(arg));
  }
  std::printf("]\nfinal loss %.5f (%s 0.01)\n", final_loss, final_loss < 0.01 ? "below" : "NOT below");
  return final_loss < 0.01 ? 0 : 2;
} catch (const std::exception& e) {
  std::fprintf(stderr, "seq_toy: %s\n", e.what());
  return 1;
}
