#include <catch2/catch.hpp>

#include <nanonav/nn/adamw.hpp>
#include <nanonav/seq_trm.hpp>

#include "gradcheck.hpp"

using namespace nanonav;
using gradcheck::MatD;

namespace {

SeqTrm<double> make_model(int vocab, int dim, int recursions, std::uint64_t seed) {
  SeqTrm<double> m(SeqTrmConfig{vocab, dim, recursions});
  m.init(seed);
  // Non-default norms and biases, so every gradient term is exercised.
  Rng rng(seed + 99);
  m.for_each_param([&](nn::Param<double>& p) {
    if (p.name.find("norm") != std::string::npos)
      for (Eigen::Index i = 0; i < p.size(); ++i) p.value.data()[i] += 0.3 * rng.normal();
  });
  return m;
}

std::vector<SeqExample> random_batch(int n, int len, int vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<SeqExample> batch(static_cast<std::size_t>(n));
  for (auto& ex : batch) {
    const int l = len + static_cast<int>(rng.below(3));
    for (int t = 0; t < l; ++t) ex.tokens.push_back(static_cast<int>(rng.below(static_cast<std::uint64_t>(vocab))));
    for (int t = 0; t + 1 < l; ++t) ex.mask.push_back(rng.below(3) != 0);
    ex.mask.back() = 1;
  }
  return batch;
}

// Checks the analytic gradient of the batch's mean masked loss against central differences.
void check_model_gradient(int vocab, int dim, int recursions, int threads) {
  SeqTrm<double> m = make_model(vocab, dim, recursions, 5);
  const std::vector<SeqExample> batch = random_batch(6, 5, vocab, 11);
  SeqTrainer<double> trainer(m, threads);
  m.for_each_param([](nn::Param<double>& p) { p.grad.setConstant(gradcheck::kPrefill); });
  trainer.loss_and_grad(batch);
  std::vector<MatD> analytic;
  m.for_each_param([&](nn::Param<double>& p) { analytic.push_back(p.grad.array() - gradcheck::kPrefill); });
  SeqTrainer<double> probe(m, 1);
  const auto objective = [&] { return probe.loss_and_grad(batch).loss; };
  gradcheck::Options opt;
  opt.max_entries = 60;
  int failures = 0, slot = 0;
  m.for_each_param([&](nn::Param<double>& p) {
    failures += gradcheck::check_entries(p.name, p.value.data(), analytic[static_cast<std::size_t>(slot++)].data(),
                                         static_cast<std::size_t>(p.size()), objective, opt);
  });
  CHECK(failures == 0);
}

}  // namespace

TEST_CASE("RecursiveBlock backward matches central differences", "[seq_trm]") {
  for (std::uint64_t seed : {1u, 2u}) {
    const int d = 5, n = 3;
    RecursiveBlock<double> blk("recursive_block", d);
    Rng rng(seed);
    blk.init(rng);
    blk.for_each_param([&](nn::Param<double>& p) {
      for (Eigen::Index i = 0; i < p.size(); ++i) p.value.data()[i] += 0.2 * rng.normal();
    });
    // x = [state | input]; y = [output | new state].
    const MatD x = gradcheck::random_matrix(n, 2 * d, rng, seed == 2 ? 1e-3 : 1.0);
    typename RecursiveBlock<double>::Cache cache;
    std::vector<nn::Param<double>*> params;
    blk.for_each_param([&](nn::Param<double>& p) { params.push_back(&p); });
    const auto fwd = [&](const MatD& xx, MatD& y) {
      y.resize(n, 2 * d);
      MatD out(n, d), ns(n, d);
      blk.forward(xx.leftCols(d), xx.rightCols(d), out, ns, cache);
      y << out, ns;
    };
    const auto bwd = [&](const MatD& xx, const MatD& dy, MatD& dx) {
      MatD out(n, d), ns(n, d);
      blk.forward(xx.leftCols(d), xx.rightCols(d), out, ns, cache);
      blk.backward(cache, dy.leftCols(d), dy.rightCols(d), dx.leftCols(d), dx.rightCols(d));
    };
    CHECK(gradcheck::check_layer("block", x, params, fwd, bwd) == 0);
  }
}

TEST_CASE("SeqTrm backward through time matches central differences", "[seq_trm]") {
  SECTION("one recursion per token (the notebook)") { check_model_gradient(7, 4, 1, 1); }
  SECTION("three recursions per token") { check_model_gradient(6, 3, 3, 1); }
  SECTION("two threads") { check_model_gradient(7, 4, 2, 2); }
}

TEST_CASE("SeqTrm parameters carry the notebook's module names and sizes", "[seq_trm]") {
  SeqTrm<float> m(SeqTrmConfig{405, 64, 1});
  std::vector<std::string> names;
  m.for_each_param([&](const nn::Param<float>& p) { names.push_back(p.name); });
  CHECK(names.front() == "embedding.weight");
  CHECK(names[1] == "recursive_block.norm_state.weight");
  CHECK(names.back() == "output_linear.bias");
  CHECK(names.size() == 13);
  // PyTorch's TRM(405, 64): 405*64 + 4*64 + 2*(128*128 + 128) + 2*64 + 64*405 + 405.
  CHECK(m.num_params() == 405u * 64 + 4 * 64 + 2 * (128 * 128 + 128) + 2 * 64 + 64 * 405 + 405);
  CHECK_THROWS_AS(SeqTrm<float>(SeqTrmConfig{1, 16, 1}), InvalidArgument);
  CHECK_THROWS_AS(SeqTrm<float>(SeqTrmConfig{10, 16, 0}), InvalidArgument);
}

TEST_CASE("decoding with a carried state equals decoding by a full re-run", "[seq_trm]") {
  for (int recursions : {1, 2}) {
    const SeqTrm<double> m = make_model(12, 6, recursions, 21);
    const std::vector<int> prompt{3, 1, 4, 1, 5, 9};
    const auto any = [](int) { return true; };
    const auto never = [](int) { return false; };
    const std::vector<int> fast = greedy_decode(m, prompt, 15, any, never);
    REQUIRE(fast.size() == 15);
    // The notebook's way: run the whole sequence again for every new token.
    std::vector<int> seq = prompt, slow;
    MatD logits;
    for (int i = 0; i < 15; ++i) {
      seq_logits(m, seq, logits);
      Eigen::Index arg = 0;
      logits.row(logits.rows() - 1).maxCoeff(&arg);
      slow.push_back(static_cast<int>(arg));
      seq.push_back(static_cast<int>(arg));
    }
    CHECK(fast == slow);
    // And the stepper's logits equal the full forward's at every position.
    SeqStepper<double> st(m);
    seq_logits(m, seq, logits);
    double worst = 0.0;
    for (std::size_t t = 0; t < seq.size(); ++t) {
      st.feed(seq[t]);
      worst = std::max(worst, (st.logits() - logits.row(static_cast<Eigen::Index>(t))).cwiseAbs().maxCoeff());
    }
    CHECK(worst < 1e-12);
    CHECK(st.tokens_fed() == seq.size());
  }
}

TEST_CASE("loss_and_grad is the same for any thread count", "[seq_trm]") {
  SeqTrm<float> m(SeqTrmConfig{30, 8, 2});
  m.init(3);
  const std::vector<SeqExample> batch = random_batch(11, 20, 30, 4);
  std::vector<nn::Mat<float>> ref;
  double ref_loss = 0.0;
  for (int threads : {1, 2, 3}) {
    m.zero_grad();
    SeqTrainer<float> tr(m, threads);
    const SeqStats st = tr.loss_and_grad(batch);
    std::vector<nn::Mat<float>> g;
    m.for_each_param([&](const nn::Param<float>& p) { g.push_back(p.grad); });
    if (threads == 1) {
      ref = g;
      ref_loss = st.loss;
      CHECK(st.loss > 0.0);
      continue;
    }
    CHECK(st.loss == ref_loss);
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == ref[i]);
  }
}

TEST_CASE("the trainer rejects malformed batches", "[seq_trm]") {
  SeqTrm<float> m(SeqTrmConfig{10, 4, 1});
  m.init(1);
  SeqTrainer<float> tr(m, 1);
  CHECK_THROWS_AS(tr.loss_and_grad({}), InvalidArgument);
  CHECK_THROWS_AS(tr.loss_and_grad({SeqExample{{1}, {}}}), InvalidArgument);
  CHECK_THROWS_AS(tr.loss_and_grad({SeqExample{{1, 2, 3}, {1}}}), InvalidArgument);
  CHECK_THROWS_AS(tr.loss_and_grad({SeqExample{{1, 2, 10}, {1, 1}}}), InvalidArgument);
  CHECK_THROWS_AS(tr.loss_and_grad({SeqExample{{1, 2, 3}, {0, 0}}}), InvalidArgument);
}

TEST_CASE("maze examples mask the layout, and constrained decoding only steps to free neighbours",
          "[seq_trm]") {
  const MazeProblem mp = random_maze_problem(MazeKind::Perfect, 8, 8, 5, 0, 0.3, 6);
  const SeqExample ex = maze_example(mp.problem, mp.path);
  REQUIRE(ex.tokens.size() == 64 + 1 + mp.path.size());
  for (std::size_t t = 0; t < ex.mask.size(); ++t) CHECK(ex.mask[t] == (t >= 64 ? 1 : 0));
  CHECK(ex.tokens[64] == maze_token::kSep);

  SeqTrm<float> m(SeqTrmConfig{maze_vocab(8, 8), 8, 1});
  m.init(9);
  MazeDecodeOptions opt;
  opt.constrained = true;
  opt.max_len = 30;
  const std::vector<Pos> path = decode_maze_path(m, mp.problem, opt);
  REQUIRE(!path.empty());
  CHECK(path.front() == mp.problem.start);
  CHECK(path.size() <= 30);
  for (std::size_t i = 1; i < path.size(); ++i) {
    CHECK(mp.problem.grid.is_free(path[i]));
    CHECK(std::abs(path[i].row - path[i - 1].row) + std::abs(path[i].col - path[i - 1].col) == 1);
  }
  opt.no_revisit = true;
  const std::vector<Pos> fresh = decode_maze_path(m, mp.problem, opt);
  for (std::size_t i = 0; i < fresh.size(); ++i)
    for (std::size_t k = 0; k < i; ++k) CHECK(fresh[i] != fresh[k]);
  CHECK_THROWS_AS(decode_maze_path(SeqTrm<float>(SeqTrmConfig{10, 4, 1}), mp.problem), InvalidArgument);
}

TEST_CASE("the notebook's toy: [1,2,3,4] -> [2,3,4,5] is learnt to a loss below 0.01", "[seq_trm]") {
  SeqTrm<float> m(SeqTrmConfig{10, 16, 1});
  m.init(0);
  nn::AdamWConfig adam;
  adam.weight_decay = 0.0;  // plain Adam, as the notebook
  nn::AdamW<float> opt(adam);
  SeqTrainer<float> tr(m, 1);
  const std::vector<SeqExample> batch{SeqExample{{1, 2, 3, 4, 5}, {1, 1, 1, 1}}};
  SeqStats st;
  for (int step = 0; step < 100; ++step) {
    m.zero_grad();
    st = tr.loss_and_grad(batch);
    opt.step(m, 0.01);
  }
  m.zero_grad();
  st = tr.loss_and_grad(batch);
  CHECK(st.loss < 0.01);
  CHECK(st.correct == 4);
  nn::Mat<float> logits;
  seq_logits(m, {1, 2, 3, 4}, logits);
  for (int t = 0; t < 4; ++t) {
    Eigen::Index arg = 0;
    logits.row(t).maxCoeff(&arg);
    CHECK(arg == t + 2);
  }
}
