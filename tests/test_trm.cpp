#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <set>
#include <sstream>
#include <vector>

#include <nanonav/nn/adamw.hpp>
#include <nanonav/nn/schedule.hpp>
#include <nanonav/trm.hpp>

#include "gradcheck.hpp"

using namespace nanonav;
using gradcheck::MatD;
using gradcheck::ParamD;

namespace {

// A tiny model: 2x2 grids (T = 8, vocab 5), dim 4, depth 2.
TrmConfig tiny_config(int recursion = 3, double dropout = 0.0) {
  TrmConfig c;
  c.grid_size = 2;
  c.dim = 4;
  c.depth = 2;
  c.recursion = recursion;
  c.dropout = dropout;
  return c;
}

// Random valid tokens (B, T) and optimal-action masks.
struct Batch {
  std::vector<std::uint8_t> tokens, masks;
  std::vector<float> weights;
};
Batch random_batch(const TrmConfig& c, int batch, std::uint64_t seed) {
  Rng rng(seed);
  Batch b;
  const int T = c.tokens();
  for (int i = 0; i < batch; ++i) {
    for (int t = 0; t < T; ++t)
      b.tokens.push_back(static_cast<std::uint8_t>(t < T - 4 ? 1 + rng.below(2) : 3 + rng.below(c.grid_size)));
    std::uint8_t m = 0;
    while (m == 0) m = static_cast<std::uint8_t>(rng.below(32));
    b.masks.push_back(m);
    b.weights.push_back(static_cast<float>(0.5 + rng.uniform()));
  }
  return b;
}

std::vector<ParamD*> params_of(Trm<double>& m) {
  std::vector<ParamD*> ps;
  m.for_each_param([&](ParamD& p) { ps.push_back(&p); });
  return ps;
}

// A model with m's weights, `recursion` applications, gradient through all of them, and the
// given wiring.
Trm<double> same_weights(const Trm<double>& m, int recursion, bool injection) {
  TrmConfig c = m.config();
  c.recursion = recursion;
  c.grad_last_k = 0;
  c.input_injection = injection;
  Trm<double> out(c);
  std::vector<ParamD*> dst = params_of(out);
  std::size_t i = 0;
  m.for_each_param([&](const ParamD& p) { dst[i++]->value = p.value; });
  return out;
}

// The network state after the first `apps` applications of m, with m's current weights (ws is
// sized for inference; with injection ws.emb holds the embedding afterwards).
MatD prefix_state(const Trm<double>& m, const Batch& b, int batch, int apps, TrmWorkspace<double>& ws) {
  ws.ensure(m.config(), batch, 0, false);
  const detail::TrmDropout off;
  detail::embed_forward(m, b.tokens.data(), batch, ws);
  detail::network_forward(same_weights(m, apps, m.config().input_injection), batch, 0, off, ws);
  return ws.states[0];
}

// Pre-fills grads with kPrefill, runs loss_and_grad (with aux targets when given), returns
// grad - kPrefill per slot.
std::vector<MatD> analytic_grads(Trm<double>& m, TrmTrainer<double>& tr, const Batch& b, int batch,
                                 const std::uint16_t* aux = nullptr) {
  m.for_each_param([](ParamD& p) { p.grad.setConstant(gradcheck::kPrefill); });
  tr.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 0, false, aux);
  std::vector<MatD> g;
  m.for_each_param([&](ParamD& p) { g.push_back(p.grad.array() - gradcheck::kPrefill); });
  return g;
}

// Central differences of f against the analytic gradients g (slot order) of every parameter
// of m, up to max_entries entries each; returns the number of mismatches.
int check_all_params(const std::string& what, Trm<double>& m, const std::vector<MatD>& g,
                     const std::function<double()>& f, int max_entries) {
  gradcheck::Options opt;
  opt.max_entries = max_entries;
  int fails = 0;
  std::size_t slot = 0;
  for (ParamD* p : params_of(m)) {
    fails += gradcheck::check_entries(what + " d/d" + p->name, p->value.data(), g[slot].data(),
                                      static_cast<std::size_t>(p->value.size()), f, opt);
    ++slot;
  }
  return fails;
}

// Gives mf the weights of md (rounded to float); returns mf's parameters in slot order.
std::vector<nn::Param<float>*> copy_to_float(const Trm<double>& md, Trm<float>& mf) {
  std::vector<nn::Param<float>*> fp;
  mf.for_each_param([&](nn::Param<float>& q) { fp.push_back(&q); });
  std::size_t i = 0;
  md.for_each_param([&](const ParamD& q) { fp[i++]->value = q.value.cast<float>(); });
  return fp;
}

}  // namespace

TEST_CASE("TRM dim 64, depth 2 on 8x8 has 84 301 parameters with PyTorch shapes", "[trm]") {
  TrmConfig c;
  CHECK(c.tokens() == 68);
  CHECK(c.vocab() == 11);
  Trm<float> m(c);
  CHECK(m.num_params() == 84301);
  std::set<std::string> names;
  std::size_t count = 0;
  m.for_each_param([&](const nn::Param<float>& p) {
    names.insert(p.name);
    ++count;
    std::int64_t n = 1;
    for (auto s : p.shape) n *= s;
    CHECK(n == p.value.size());
  });
  CHECK(names.size() == count);
  CHECK(m.blocks[0].tok_w1.weight.shape == std::vector<std::int64_t>{256, 68, 1});
  CHECK(m.blocks[1].chan_w2.weight.shape == std::vector<std::int64_t>{64, 32});
  CHECK_FALSE(m.blocks[0].tok_norm.has_bias());
  CHECK_FALSE(m.norm.has_bias());
  CHECK(m.head_norm.has_bias());
  TrmConfig big = c;
  big.dim = 128;
  big.depth = 3;
  CHECK(Trm<float>(big).num_params() > 200000);
}

TEST_CASE("TrmConfig rejects values outside their domain", "[trm]") {
  for (auto f : std::vector<void (*)(TrmConfig&)>{
           [](TrmConfig& c) { c.grid_size = 0; }, [](TrmConfig& c) { c.dim = 1; },
           [](TrmConfig& c) { c.depth = 0; }, [](TrmConfig& c) { c.recursion = 0; },
           [](TrmConfig& c) { c.dropout = 1.0; }, [](TrmConfig& c) { c.dropout = -0.1; },
           [](TrmConfig& c) { c.grad_last_k = 9; }, [](TrmConfig& c) { c.grad_last_k = -1; },
           [](TrmConfig& c) { c.aux_distance = -1.0; }, [](TrmConfig& c) { c.aux_distance = std::nan(""); }}) {
    TrmConfig c;
    f(c);
    CHECK_THROWS_AS(c.validate(), InvalidArgument);
    CHECK_THROWS_AS(Trm<double>(c), InvalidArgument);
  }
}

TEST_CASE("a mixer block: gradients of input and all 10 parameters", "[trm][gradcheck]") {
  for (double scale : {1.0, 1e-3}) {
    TrmConfig c = tiny_config(1);
    c.dim = 6;
    Trm<double> m(c);
    m.init(3);
    TrmBlock<double>& blk = m.blocks[1];
    // Biases and gains away from their init values, so every term matters.
    Rng rng(4);
    blk.for_each_param([&](ParamD& p) {
      if (!p.decay) p.value = gradcheck::random_matrix(p.value.rows(), p.value.cols(), rng, 0.3).array() + (p.name.find("norm") != std::string::npos ? 1.0 : 0.0);
    });
    std::vector<ParamD*> ps;
    blk.for_each_param([&](ParamD& p) { ps.push_back(&p); });
    CHECK(ps.size() == 10);
    const int chunk = 3, M = c.tokens() * chunk;
    TrmWorkspace<double> ws;
    ws.ensure(c, chunk, 1, false);
    detail::TrmDropout off;
    const MatD x = gradcheck::random_matrix(M, c.dim, rng, scale);
    gradcheck::Options opt;
    opt.h_input = 1e-5 * scale;  // norms curve sharply near zero: the step follows the scale
    const int fails = gradcheck::check_layer(
        "block", x, ps,
        [&](const MatD& in, MatD& y) {
          y.resize(M, c.dim);
          detail::block_forward(blk, c, chunk, in.data(), y.data(), ws.caches[0], ws.hidden_masks, ws.norm, ws.gemm, 0, 0, off);
        },
        [&](const MatD& in, const MatD& dy, MatD& dx) {
          ws.dx = dy;
          detail::block_backward(blk, c, chunk, in.data(), ws.caches[0], false, 0.0, ws);
          dx += ws.dx;
        },
        opt);
    CHECK(fails == 0);
  }
}

TEST_CASE("the whole model, recursion 3, dropout off: every parameter's gradient", "[trm][gradcheck]") {
  TrmConfig c = tiny_config(3);
  // The seed's model, and the variant that re-injects the embedding into applications 2 and 3.
  c.input_injection = GENERATE(false, true);
  CAPTURE(c.input_injection);
  Trm<double> m(c);
  m.init(11);
  const int batch = 5;  // micro-batches of 2: 3 chunks, reduced in order
  const Batch b = random_batch(c, batch, 12);
  TrmTrainer<double> tr(m, 1, 2);
  const std::vector<MatD> g = analytic_grads(m, tr, b, batch);
  const auto f = [&]() { return tr.evaluate(b.tokens.data(), b.masks.data(), b.weights.data(), batch).loss; };
  CHECK(check_all_params("trm", m, g, f, 40) == 0);
  CHECK(g[0].cwiseAbs().maxCoeff() > 0);  // the embedding is reached
}

TEST_CASE("the aux distance head: whole-model gradients of action loss + aux loss", "[trm][gradcheck]") {
  TrmConfig c = tiny_config(3);
  c.aux_distance = 0.7;
  Trm<double> m(c);
  m.init(41);
  const std::size_t plain = Trm<double>(tiny_config(3)).num_params();
  CHECK(m.num_params() == plain + static_cast<std::size_t>(c.dim) + 1);  // Linear(dim, 1)
  const int batch = 5, cells = c.grid_size * c.grid_size;
  const Batch b = random_batch(c, batch, 42);
  // Distances 0..5, some cells without a target, one sample with none at all.
  Rng rng(43);
  std::vector<std::uint16_t> targets(static_cast<std::size_t>(batch) * cells);
  for (auto& t : targets) t = rng.below(4) == 0 ? nn::kNoTarget : static_cast<std::uint16_t>(rng.below(6));
  for (int j = 0; j < cells; ++j) targets[static_cast<std::size_t>(3 * cells + j)] = nn::kNoTarget;
  TrmTrainer<double> tr(m, 1, 2);
  const std::vector<MatD> g = analytic_grads(m, tr, b, batch, targets.data());
  TrmTrainer<double> probe(m, 1, 2);
  const auto objective = [&]() {
    return probe.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 0, false, targets.data());
  };
  const StepStats st = objective();
  CHECK(st.aux_loss > 0);
  CHECK(st.loss == Approx(tr.evaluate(b.tokens.data(), b.masks.data(), b.weights.data(), batch).loss));
  const auto f = [&]() {
    const StepStats s2 = objective();
    return s2.loss + s2.aux_loss;
  };
  CHECK(check_all_params("trm+aux", m, g, f, 40) == 0);
  CHECK(g.back().cwiseAbs().maxCoeff() > 0);  // the aux bias learns
  // The aux head leaves the action logits alone: same weights without it, same logits.
  Trm<double> bare(tiny_config(3));
  std::vector<ParamD*> dst = params_of(bare);
  std::size_t i = 0;
  m.for_each_param([&](const ParamD& p) {
    if (i < dst.size()) dst[i]->value = p.value;
    ++i;
  });
  TrmTrainer<double> tb(bare, 1, 2), ta(m, 1, 2);
  MatD la, lb;
  ta.logits(b.tokens.data(), batch, la);
  tb.logits(b.tokens.data(), batch, lb);
  CHECK((la - lb).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("dropout on: gradients match finite differences under the same seeded masks", "[trm][gradcheck]") {
  const TrmConfig c = tiny_config(2, 0.3);
  Trm<double> m(c);
  m.init(31);
  const int batch = 3;
  const Batch b = random_batch(c, batch, 32);
  TrmTrainer<double> tr(m, 1, 2);
  m.for_each_param([](ParamD& p) { p.grad.setConstant(gradcheck::kPrefill); });
  tr.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 77, true);
  std::vector<MatD> g;
  m.for_each_param([&](ParamD& p) { g.push_back(p.grad.array() - gradcheck::kPrefill); });
  // The masks depend only on (seed, sample, application, block): the loss is a smooth
  // function of the weights for a fixed seed.
  const auto f = [&]() {
    return tr.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 77, true).loss;
  };
  CHECK(check_all_params("dropout", m, g, f, 25) == 0);
}

TEST_CASE("grad through the last k applications: finite differences of the frozen-prefix model", "[trm][gradcheck]") {
  TrmConfig c = tiny_config(3);
  c.grad_last_k = 1;
  Trm<double> m(c);
  m.init(21);
  const int batch = 3;
  const Batch b = random_batch(c, batch, 22);
  TrmTrainer<double> tr(m, 1, 4);
  const std::vector<MatD> g = analytic_grads(m, tr, b, batch);

  // The state after the first R - k = 2 applications, with the original weights: a constant.
  TrmWorkspace<double> ws;
  const detail::TrmDropout off;
  const MatD x0 = prefix_state(m, b, batch, 2, ws);
  // f(θ) = loss(head(network_θ(x0))): one application (recursion 1) from the frozen state.
  Trm<double> last = same_weights(m, 1, false);
  std::vector<ParamD*> lp = params_of(last);
  const auto f = [&]() {
    ws.states[0] = x0;
    detail::network_forward(last, batch, 0, off, ws);
    detail::head_forward(last, batch, ws.states[0], off, ws);
    return nn::masked_cross_entropy<double>(ws.logits, b.masks.data(), b.weights.data(), 1.0, nullptr)
               .weighted_loss / batch;
  };
  gradcheck::Options opt;
  opt.max_entries = 30;
  int fails = 0;
  for (std::size_t i = 1; i < lp.size(); ++i)
    fails += gradcheck::check_entries("last-k d/d" + lp[i]->name, lp[i]->value.data(), g[i].data(),
                                      static_cast<std::size_t>(lp[i]->value.size()), f, opt);
  CHECK(fails == 0);
  CHECK(g[0].cwiseAbs().maxCoeff() == 0.0);  // the embedding feeds only frozen applications

  // last-k = recursion is the full gradient; last-k < recursion differs from it.
  Trm<double> full = m;
  full.set_grad_last_k(0);
  TrmTrainer<double> trf(full, 1, 4);
  const std::vector<MatD> gf = analytic_grads(full, trf, b, batch);
  full.set_grad_last_k(3);
  const std::vector<MatD> gk = analytic_grads(full, trf, b, batch);
  double diff_full = 0, diff_last = 0;
  for (std::size_t i = 0; i < gf.size(); ++i) {
    diff_full = std::max(diff_full, (gf[i] - gk[i]).cwiseAbs().maxCoeff());
    diff_last = std::max(diff_last, (gf[i] - g[i]).cwiseAbs().maxCoeff());
  }
  CHECK(diff_full == 0.0);
  CHECK(diff_last > 1e-6);
}

TEST_CASE("input injection with grad through the last k: the embedding learns through the injection", "[trm][gradcheck]") {
  TrmConfig c = tiny_config(3);
  c.grad_last_k = 1;
  c.input_injection = true;
  Trm<double> m(c);
  m.init(41);
  const int batch = 3;
  const Batch b = random_batch(c, batch, 42);
  TrmTrainer<double> tr(m, 1, 2);
  const std::vector<MatD> g = analytic_grads(m, tr, b, batch);

  // The state after the first two applications, with the original weights: a constant x0.
  TrmWorkspace<double> ws;
  const detail::TrmDropout off;
  const MatD x0 = prefix_state(m, b, batch, 2, ws);
  // f(θ) = loss(head(network_θ(x0 + embed_θ(tokens)))): the last application's input depends
  // on the embedding through the injection only.
  Trm<double> last = same_weights(m, 1, true);
  std::vector<ParamD*> lp = params_of(last);
  const auto f = [&]() {
    detail::embed_forward(last, b.tokens.data(), batch, ws);
    ws.states[0] = x0 + ws.emb;
    detail::network_forward(last, batch, 0, off, ws);
    detail::head_forward(last, batch, ws.states[0], off, ws);
    return nn::masked_cross_entropy<double>(ws.logits, b.masks.data(), b.weights.data(), 1.0, nullptr)
               .weighted_loss / batch;
  };
  // The model computes exactly this function (forward check), and it is not the seed's one.
  const double full_loss = tr.evaluate(b.tokens.data(), b.masks.data(), b.weights.data(), batch).loss;
  CHECK(f() == Approx(full_loss).epsilon(1e-12));
  {
    Trm<double> seed_wiring = same_weights(m, c.recursion, false);
    TrmTrainer<double> ts(seed_wiring, 1, 2);
    CHECK(std::abs(ts.evaluate(b.tokens.data(), b.masks.data(), b.weights.data(), batch).loss - full_loss) > 1e-6);
  }
  gradcheck::Options opt;
  opt.max_entries = 30;
  int fails = 0;
  for (std::size_t i = 0; i < lp.size(); ++i)
    fails += gradcheck::check_entries("inject last-k d/d" + lp[i]->name, lp[i]->value.data(), g[i].data(),
                                      static_cast<std::size_t>(lp[i]->value.size()), f, opt);
  CHECK(fails == 0);
  CHECK(g[0].cwiseAbs().maxCoeff() > 0);  // unlike without injection, the embedding is reached
}

TEST_CASE("the fused float GELU + dropout (+ Dropout'·GELU') agrees with the double form", "[trm]") {
  // Float goes to the AVX-512 form in AVX-512 builds and to Eigen's erf otherwise; both must
  // match the double (std::erf) form to float precision, including the tails, huge inputs,
  // the biases, the dropout mask and lengths that are not a multiple of the vector width.
  std::vector<double> xs;
  for (int i = -2400; i <= 2400; ++i) xs.push_back(i * 0.005);  // [-12, 12]
  for (double v : {-1e20, -1e6, -40.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 40.0, 1e6, 1e20}) xs.push_back(v);
  const Eigen::Index n = static_cast<Eigen::Index>(xs.size());
  Rng rng(31);
  std::vector<std::uint8_t> mask(xs.size());
  nn::Dropout(0.3).sample_mask(rng, mask.data(), mask.size());
  std::vector<float> bias_vec(xs.size());
  for (auto& b : bias_vec) b = static_cast<float>(rng.uniform() * 0.2 - 0.1);
  const float bias = 0.25f, scale = 1.0f / 0.7f;
  for (Eigen::Index len : {n, Eigen::Index{1}, Eigen::Index{15}, Eigen::Index{17}, Eigen::Index{33}}) {
    for (int variant = 0; variant < 3; ++variant) {  // plain; + bias and mask; + bias_vec
      std::vector<float> a(static_cast<std::size_t>(len) + 1, 7.0f), g(a.size(), 7.0f);
      for (Eigen::Index i = 0; i < len; ++i) a[i] = static_cast<float>(xs[i]);
      const std::uint8_t* mk = variant > 0 ? mask.data() : nullptr;
      const float b = variant == 1 ? bias : 0.0f;
      const float* bv = variant == 2 ? bias_vec.data() : nullptr;
      std::vector<float> in = a;
      detail::gelu_dropout_forward<float>(a.data(), g.data(), len, mk, variant > 0 ? scale : 1.0f, true, b, bv);
      // the same with g written over the input and GELU' into a separate buffer: 64-byte
      // aligned (streaming stores in AVX-512 builds) and not
      for (std::size_t off : {std::size_t{0}, std::size_t{1}}) {
        std::vector<float, nn::Aligned64Allocator<float>> gi(in.begin(), in.end()), d(a.size() + 1, 7.0f);
        detail::gelu_dropout_forward<float>(gi.data(), gi.data(), len, mk, variant > 0 ? scale : 1.0f, true, b, bv,
                                            d.data() + off);
        detail::streaming_stores_done<float>();
        INFO("in place, GELU' at offset " << off);
        for (Eigen::Index i = 0; i < len; ++i) {
          CHECK(gi[static_cast<std::size_t>(i)] == g[static_cast<std::size_t>(i)]);
          CHECK(d[off + static_cast<std::size_t>(i)] == a[static_cast<std::size_t>(i)]);
        }
        CHECK(d[off + static_cast<std::size_t>(len)] == 7.0f);
        if (off == 1) CHECK(d[0] == 7.0f);
      }
      double worst_g = 0, worst_d = 0;
      for (Eigen::Index i = 0; i < len; ++i) {
        // the reference in double, from the float input the kernel saw
        const double x = static_cast<double>(static_cast<float>(static_cast<float>(in[i]) + b + (bv ? bv[i] : 0.0f)));
        const double cdf = 0.5 * (1 + std::erf(x / std::sqrt(2.0)));
        const double m = mk ? mk[i] * static_cast<double>(scale) : 1.0;
        const double want_g = x * cdf * m;
        // GELU' with the mask and scale folded in (what backward multiplies by)
        const double want_d = (cdf + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI)) * m;
        worst_g = std::max(worst_g, std::abs(g[i] - want_g) / (1 + std::abs(x) * m));
        worst_d = std::max(worst_d, std::abs(a[i] - want_d) / std::max(1.0, m));
      }
      INFO("len " << len << ", variant " << variant);
      CHECK(worst_g < 4e-7);
      CHECK(worst_d < 4e-7);
      CHECK(a[static_cast<std::size_t>(len)] == 7.0f);  // nothing past n is touched
      CHECK(g[static_cast<std::size_t>(len)] == 7.0f);
    }
  }
}

TEST_CASE("float and double forward agree to float tolerance", "[trm]") {
  TrmConfig c;
  c.recursion = 4;
  Trm<double> md(c);
  md.init(5);
  Trm<float> mf(c);
  copy_to_float(md, mf);
  const Batch b = random_batch(c, 6, 6);
  TrmWorkspace<double> wd;
  TrmWorkspace<float> wf;
  MatD ld;
  nn::Mat<float> lf;
  trm_logits(md, b.tokens.data(), 6, wd, ld);
  trm_logits(mf, b.tokens.data(), 6, wf, lf);
  CHECK(ld.cwiseAbs().maxCoeff() > 0.01);
  CHECK((lf.cast<double>() - ld).cwiseAbs().maxCoeff() < 2e-4 * (1 + ld.cwiseAbs().maxCoeff()));
  // inference keeps nothing for backward: no block cache holds GELU' (a1)
  for (const auto& cc : wf.caches) CHECK(cc.a1.size() == 0);
}

TEST_CASE("float training gradients (the kernel path) agree with the double gradients", "[trm]") {
  // The gradient checks prove the double path; this ties the float path to it: in AVX-512
  // builds float runs the hand-written GEMM kernel with its fused epilogues, weights packed
  // once per pass and the vector GELU and dropout. Shapes leave partial tiles everywhere
  // (T = 20, 4 dim = 64 rows, C dim = 48 columns per micro-batch of 3).
  for (double p : {0.0, 0.1}) {
    TrmConfig c;
    c.grid_size = 4;
    c.dim = 16;
    c.depth = 2;
    c.recursion = 3;
    c.dropout = p;
    Trm<double> md(c);
    md.init(41);
    Trm<float> mf(c);
    const std::vector<nn::Param<float>*> fp = copy_to_float(md, mf);
    // the float weights, back in double, so that both start from the same point
    std::size_t i = 0;
    md.for_each_param([&](ParamD& q) { q.value = fp[i++]->value.cast<double>(); });
    const Batch b = random_batch(c, 7, 42);
    TrmTrainer<double> td(md, 1, 3);
    TrmTrainer<float> tf(mf, 2, 3);
    md.zero_grad();
    mf.zero_grad();
    const double ld = td.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), 7, 5).loss;
    const double lf = tf.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), 7, 5).loss;
    INFO("dropout " << p);
    CHECK(lf == Approx(ld).epsilon(1e-5));
    std::vector<const ParamD*> dp;
    md.for_each_param([&](const ParamD& q) { dp.push_back(&q); });
    int bad = 0;
    for (std::size_t k = 0; k < dp.size(); ++k) {
      const MatD gd = dp[k]->grad;
      const double scale = gd.cwiseAbs().maxCoeff();
      const double err = (fp[k]->grad.cast<double>() - gd).cwiseAbs().maxCoeff();
      if (!(err <= 2e-5 * scale + 1e-8)) {
        ++bad;
        UNSCOPED_INFO(dp[k]->name << ": max |float - double| " << err << " against max |grad| " << scale);
      }
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("results do not depend on the thread count or on the batch around a sample", "[trm]") {
  TrmConfig c = tiny_config(3, 0.2);
  c.grid_size = 4;
  c.dim = 8;
  Trm<float> m1(c);
  m1.init(7);
  Trm<float> m2 = m1;
  const int batch = 7;
  const Batch b = random_batch(c, batch, 8);
  TrmTrainer<float> t1(m1, 1, 2), t2(m2, 2, 2);
  const StepStats s1 = t1.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 99);
  const StepStats s2 = t2.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 99);
  CHECK(s1.loss == s2.loss);
  CHECK(s1.correct == s2.correct);
  std::vector<nn::Mat<float>> g1, g2;
  m1.for_each_param([&](const nn::Param<float>& p) { g1.push_back(p.grad); });
  m2.for_each_param([&](const nn::Param<float>& p) { g2.push_back(p.grad); });
  for (std::size_t i = 0; i < g1.size(); ++i) CHECK(g1[i] == g2[i]);

  // Dropout: seeded, and off in evaluation.
  const StepStats s3 = t1.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, 100);
  const StepStats e = t1.evaluate(b.tokens.data(), b.masks.data(), b.weights.data(), batch);
  CHECK(s3.loss != s1.loss);
  CHECK(e.loss != s1.loss);

  // Inference: trm_logits, the trainer's parallel logits, one sample at a time.
  nn::Mat<float> la, lb, l1;
  TrmWorkspace<float> ws;
  trm_logits(m1, b.tokens.data(), batch, ws, la);
  t2.logits(b.tokens.data(), batch, lb);
  CHECK((la - lb).cwiseAbs().maxCoeff() < 1e-5f);
  for (int i = 0; i < batch; ++i) {
    trm_logits(m1, b.tokens.data() + i * c.tokens(), 1, ws, l1);
    CHECK((l1.row(0) - la.row(i)).cwiseAbs().maxCoeff() < 1e-5f);
  }
}

TEST_CASE("trm_logits runs a batch as micro-batches of the default size, the last one padded", "[trm]") {
  TrmConfig c = tiny_config(8);
  c.grid_size = 4;
  c.dim = 64;  // with recursion 8: default micro-batch 4
  REQUIRE(default_micro_batch(c) == 4);
  Trm<double> md(c);
  md.init(11);
  Trm<float> m(c);
  copy_to_float(md, m);
  const int batch = 13, T = c.tokens();
  const Batch b = random_batch(c, batch, 12);
  TrmWorkspace<float> ws;
  nn::Mat<float> all, part;
  trm_logits(m, b.tokens.data(), batch, ws, all);
  REQUIRE(all.rows() == batch);
  REQUIRE(ws.chunk() == 4);
  const float* buffer = ws.states[0].data();
  // Each full micro-batch gives the same bits as that micro-batch alone.
  TrmWorkspace<float> ws4;
  for (int b0 = 0; b0 + 4 <= batch; b0 += 4) {
    trm_logits(m, b.tokens.data() + b0 * T, 4, ws4, part);
    CHECK(part == all.middleRows(b0, 4));
  }
  // The last sample ran in a micro-batch of four copies of itself.
  std::vector<std::uint8_t> four;
  for (int i = 0; i < 4; ++i) four.insert(four.end(), b.tokens.begin() + 12 * T, b.tokens.begin() + 13 * T);
  trm_logits(m, four.data(), 4, ws4, part);
  CHECK(part.row(0) == all.row(12));
  CHECK(part.row(3) == all.row(12));
  // Against the double model and one sample at a time: the same function up to float rounding.
  TrmWorkspace<double> wd;
  nn::Mat<double> ld;
  trm_logits(md, b.tokens.data(), batch, wd, ld);
  CHECK((ld.cast<float>() - all).cwiseAbs().maxCoeff() < 1e-4f);
  for (int i = 0; i < batch; ++i) {
    TrmWorkspace<float> w1;
    trm_logits(m, b.tokens.data() + i * T, 1, w1, part);
    CHECK((part.row(0) - all.row(i)).cwiseAbs().maxCoeff() < 1e-5f);
  }
  // The same batch size again reuses the workspace.
  trm_logits(m, b.tokens.data(), batch, ws, part);
  CHECK(part == all);
  CHECK(ws.states[0].data() == buffer);
}

TEST_CASE("packed weights are reused within a step or call and packed again after the weights change", "[trm]") {
  TrmConfig c = tiny_config(3, 0.1);
  c.grid_size = 4;
  c.dim = 64;  // micro-batches of 8 (recursion 3): several per thread below
  Trm<float> m(c);
  m.init(21);
  const int batch = 40;
  const Batch b = random_batch(c, batch, 22);
  TrmTrainer<float> kept(m, 2);  // its workspaces live across the steps
  nn::AdamW<float> opt;
  TrmWorkspace<float> ws;
  nn::Mat<float> la, lb;
  for (std::uint64_t step = 0; step < 3; ++step) {
    // A trainer made now packs from scratch; the kept one must not use last step's packing.
    m.zero_grad();
    Trm<float> copy = m;
    TrmTrainer<float> fresh(copy, 1);
    const StepStats s1 = kept.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, step);
    const StepStats s2 = fresh.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), batch, step);
    CHECK(s1.loss == s2.loss);
    std::vector<nn::Mat<float>> g1, g2;
    m.for_each_param([&](const nn::Param<float>& p) { g1.push_back(p.grad); });
    copy.for_each_param([&](const nn::Param<float>& p) { g2.push_back(p.grad); });
    for (std::size_t i = 0; i < g1.size(); ++i) CHECK(g1[i] == g2[i]);
    kept.logits(b.tokens.data(), batch, la);
    fresh.logits(b.tokens.data(), batch, lb);
    CHECK(la == lb);
    // trm_logits on a workspace reused across weight changes, against a new workspace.
    TrmWorkspace<float> ws_new;
    trm_logits(m, b.tokens.data(), batch, ws, la);
    trm_logits(m, b.tokens.data(), batch, ws_new, lb);
    CHECK(la == lb);
    opt.step(m, 1e-2f);
  }
}

TEST_CASE("bad tokens and masks throw InvalidArgument, also from worker threads", "[trm]") {
  const TrmConfig c = tiny_config(2);
  Trm<float> m(c);
  m.init(1);
  Batch b = random_batch(c, 4, 2);
  TrmTrainer<float> tr(m, 2, 1);
  b.tokens[3 * c.tokens() + 1] = static_cast<std::uint8_t>(c.vocab());
  CHECK_THROWS_AS(tr.loss_and_grad(b.tokens.data(), b.masks.data(), nullptr, 4, 0), InvalidArgument);
  // trm_logits too (it runs its micro-batches itself); the workspace stays usable afterwards.
  TrmWorkspace<float> ws, fresh;
  nn::Mat<float> la, lb;
  CHECK_THROWS_AS(trm_logits(m, b.tokens.data(), 4, ws, la), InvalidArgument);
  b.tokens[3 * c.tokens() + 1] = 1;
  trm_logits(m, b.tokens.data(), 4, ws, la);
  trm_logits(m, b.tokens.data(), 4, fresh, lb);
  CHECK(la == lb);
  b.masks[2] = 0;
  CHECK_THROWS_AS(tr.loss_and_grad(b.tokens.data(), b.masks.data(), nullptr, 4, 0), InvalidArgument);
}

TEST_CASE("the default micro-batch keeps the token-mixing products at most 256 columns wide, 512 below recursion 8", "[trm]") {
  TrmConfig c;
  REQUIRE(c.recursion == 8);
  using DimChunk = std::vector<std::pair<int, int>>;
  const DimChunk deep = {{8, 8}, {32, 8}, {48, 4}, {64, 4}, {96, 2}, {128, 2}, {192, 1}, {256, 1}, {1024, 1}};
  const DimChunk shallow = {{8, 8}, {48, 8}, {64, 8}, {96, 4}, {128, 4}, {192, 2}, {256, 2}, {512, 1}};
  for (const int recursion : {8, 12, 1, 4, 7}) {
    c.recursion = recursion;
    const int width = recursion >= 8 ? 256 : 512;
    for (const auto& [dim, chunk] : recursion >= 8 ? deep : shallow) {
      c.dim = dim;
      INFO("recursion " << recursion << ", dim " << dim);
      CHECK(default_micro_batch(c) == chunk);
      if (chunk > 1) CHECK(chunk * dim <= width);
      if (chunk < 8) CHECK(chunk * 2 * dim > width);  // the largest such power of two
    }
  }
  c.recursion = 8;
  c.dim = 128;
  c.grid_size = 3;
  Trm<float> m(c);
  CHECK(TrmTrainer<float>(m, 1).chunk() == 2);
  CHECK(TrmTrainer<float>(m, 1, 3).chunk() == 3);
}

TEST_CASE("seeded regression: 20 AdamW steps of a tiny model reproduce recorded losses", "[trm]") {
  TrmConfig c = tiny_config(3, 0.1);
  c.grid_size = 3;
  c.dim = 8;
  Trm<double> m(c);
  m.init(2024);
  const Batch b = random_batch(c, 16, 2025);
  TrmTrainer<double> tr(m, 2, 4);
  nn::AdamW<double> opt;
  std::vector<double> losses;
  for (int s = 0; s < 20; ++s) {
    m.zero_grad();
    losses.push_back(tr.loss_and_grad(b.tokens.data(), b.masks.data(), b.weights.data(), 16, 1000 + s).loss);
    nn::clip_grad_norm(m, 1.0);
    opt.step(m, nn::cosine_lr(1e-2, s, 20, 2));
  }
  // Recorded (double, 2 threads) on 2026-12-01, when dropout masks went to 16-bit draws (four
  // per RNG output); any change to the model's arithmetic, initialisation, dropout streams or
  // AdamW shows up here.
  const std::vector<double> recorded{
      0.82980804150978371, 0.80317673758074726, 0.80569522331350962, 0.80002348413950897,
      0.78393774004576733, 0.73878774011448944, 0.69312961437624809, 0.69167520019510409,
      0.66386043917684145, 0.66999132435778963, 0.61121363448071175, 0.60657324268967505,
      0.58440650797655957, 0.58086495863294219, 0.57665931734548692, 0.56565169433239704,
      0.51911499571551001, 0.5875320930963529, 0.54363172083141775, 0.54542032782850536};
  std::ostringstream os;
  os.precision(17);
  for (double l : losses) os << l << ", ";
  INFO("losses: " << os.str());
  REQUIRE(recorded.size() == losses.size());
  for (std::size_t i = 0; i < losses.size(); ++i) CHECK(losses[i] == Approx(recorded[i]).epsilon(1e-5));
  CHECK(losses.back() < losses.front());
}
