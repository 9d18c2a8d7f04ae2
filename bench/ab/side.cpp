// One side of bench_ab: TRM training steps on a fixed random batch, compiled twice, once
// against this checkout's headers and once against a baseline checkout's, with the namespace
// renamed by the preprocessor (-Dnanonav=...) so that both live in one program without
// clashing. NANONAV_AB_ENTRY names this side's entry point.
#include <cstdint>
#include <memory>
#include <vector>

#include <nanonav/nn/adamw.hpp>
#include <nanonav/trm.hpp>

namespace {

struct Side {
  nanonav::TrmConfig config;
  std::unique_ptr<nanonav::Trm<float>> model;
  std::unique_ptr<nanonav::TrmTrainer<float>> trainer;
  nanonav::nn::AdamW<float> opt;
  std::vector<std::uint8_t> tokens, masks;
  std::vector<std::uint16_t> aux_targets;  // with the aux head: a distance per cell and sample
  int batch = 0;
  std::uint64_t step = 0;
};

}  // namespace

// steps == 0: set up (dim, depth, recursion, aux distance weight, dropout, batch, threads,
// micro-batch, 0 for the trainer's default) and return the micro-batch the trainer uses; else
// run that many training steps (forward + backward + clipping + AdamW) and return the last loss.
double NANONAV_AB_ENTRY(int steps, int dim, int depth, int recursion, double aux, double dropout, int batch,
                        int threads, int chunk) {
  static std::unique_ptr<Side> s;  // one set-up per program run (bench_ab is single-use)
  using namespace nanonav;
  if (steps == 0) {
    s = std::make_unique<Side>();
    s->config.dim = dim;
    s->config.depth = depth;
    s->config.recursion = recursion;
    s->config.aux_distance = aux;
    s->config.dropout = dropout;
    s->model = std::make_unique<Trm<float>>(s->config);
    s->model->init(1);
    s->batch = batch;
    Rng rng(2);
    const int T = s->config.tokens();
    for (int i = 0; i < batch; ++i)
      for (int k = 0; k < T; ++k)
        s->tokens.push_back(static_cast<std::uint8_t>(k < T - 4 ? 1 + rng.below(2) : 3 + rng.below(s->config.grid_size)));
    for (int i = 0; i < batch; ++i) s->masks.push_back(static_cast<std::uint8_t>(1u << rng.below(5)));
    if (aux > 0)
      for (int i = 0; i < batch * s->config.grid_size * s->config.grid_size; ++i)
        s->aux_targets.push_back(static_cast<std::uint16_t>(rng.below(16)));
    s->trainer = std::make_unique<TrmTrainer<float>>(*s->model, threads, chunk);
    return s->trainer->chunk();
  }
  double loss = 0.0;
  for (int i = 0; i < steps; ++i) {
    s->model->zero_grad();
    loss = s->trainer
               ->loss_and_grad(s->tokens.data(), s->masks.data(), nullptr, s->batch, s->step++, true,
                               s->aux_targets.empty() ? nullptr : s->aux_targets.data())
               .loss;
    nn::clip_grad_norm(*s->model, 1.0);
    s->opt.step(*s->model, 1e-4f);
  }
  return loss;
}
