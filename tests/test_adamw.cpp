#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <nanonav/nn/adamw.hpp>

using namespace nanonav;

namespace {

// A two-tensor model: a weight (decayed) and a "bias" (decay == false).
template <class S>
struct Toy {
  nn::Param<S> w{"w", {2}, 1, 2, true};
  nn::Param<S> b{"b", {1}, 1, 1, false};
  template <class F>
  void for_each_param(F&& f) { f(w); f(b); }
  template <class F>
  void for_each_param(F&& f) const { f(w); f(b); }
};

template <class S>
void hand_step_test(double tol) {
  Toy<S> t;
  t.w.value << S(1.0), S(-2.0);
  t.b.value << S(0.5);
  t.w.grad << S(0.5), S(-0.1);
  t.b.grad << S(0.2);
  nn::AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  nn::AdamW<S> opt(cfg);
  const double lr = 0.01;
  opt.step(t, lr);
  // Step 1: m_hat = g, v_hat = g^2, so the Adam step is lr * g / (|g| + eps).
  const auto expect = [&](double p, double g) { return p * (1 - lr * 0.1) - lr * g / (std::abs(g) + 1e-8); };
  CHECK(static_cast<double>(t.w.value(0, 0)) == Approx(expect(1.0, 0.5)).epsilon(tol));
  CHECK(static_cast<double>(t.w.value(0, 1)) == Approx(expect(-2.0, -0.1)).epsilon(tol));
  CHECK(static_cast<double>(t.b.value(0, 0)) == Approx(expect(0.5, 0.2)).epsilon(tol));
  CHECK(opt.step_count() == 1);
  CHECK(static_cast<double>(opt.m()[0](0, 0)) == Approx(0.05).epsilon(tol));
  CHECK(static_cast<double>(opt.v()[0](0, 1)) == Approx(0.001 * 0.01).epsilon(tol));

  // Step 2 with a new gradient, computed by hand from the recorded state.
  const double p1 = static_cast<double>(t.w.value(0, 0));
  t.w.grad << S(-0.3), S(0.0);
  t.b.grad << S(0.0);
  opt.step(t, lr);
  const double m2 = 0.9 * 0.05 + 0.1 * -0.3;
  const double v2 = 0.999 * 0.001 * 0.25 + 0.001 * 0.09;
  const double bc1 = 1 - 0.81, bc2 = 1 - 0.999 * 0.999;
  const double p2 = p1 * (1 - lr * 0.1) - lr / bc1 * m2 / (std::sqrt(v2) / std::sqrt(bc2) + 1e-8);
  CHECK(static_cast<double>(t.w.value(0, 0)) == Approx(p2).epsilon(tol));
}

}  // namespace

TEST_CASE("AdamW: two hand-computed steps in double", "[adamw]") { hand_step_test<double>(1e-12); }
TEST_CASE("AdamW: two hand-computed steps in float", "[adamw]") { hand_step_test<float>(2e-6); }

TEST_CASE("AdamW exempts no-decay tensors only when asked", "[adamw]") {
  for (bool exempt : {false, true}) {
    Toy<double> t;
    t.w.value << 1.0, 1.0;
    t.b.value << 1.0;
    t.w.grad.setZero();
    t.b.grad.setZero();
    nn::AdamWConfig cfg;
    cfg.weight_decay = 0.5;
    cfg.exempt_no_decay = exempt;
    nn::AdamW<double> opt(cfg);
    opt.step(t, 0.1);
    CHECK(t.w.value(0, 0) == Approx(0.95));
    CHECK(t.b.value(0, 0) == Approx(exempt ? 1.0 : 0.95));
  }
}

TEST_CASE("AdamW converges on a quadratic bowl", "[adamw]") {
  Toy<double> t;
  t.w.value << 3.0, -4.0;
  t.b.value << 10.0;
  const double c[3] = {1.0, 2.0, -1.5}, a[3] = {1.0, 10.0, 0.1};
  nn::AdamWConfig cfg;
  cfg.weight_decay = 0.0;
  nn::AdamW<double> opt(cfg);
  const auto loss = [&]() {
    const double x[3] = {t.w.value(0, 0), t.w.value(0, 1), t.b.value(0, 0)};
    double l = 0;
    for (int i = 0; i < 3; ++i) l += a[i] * (x[i] - c[i]) * (x[i] - c[i]);
    return l;
  };
  const double l0 = loss();
  for (int s = 0; s < 3000; ++s) {
    t.w.grad << 2 * a[0] * (t.w.value(0, 0) - c[0]), 2 * a[1] * (t.w.value(0, 1) - c[1]);
    t.b.grad << 2 * a[2] * (t.b.value(0, 0) - c[2]);
    opt.step(t, s < 2000 ? 0.05 : 0.005);
  }
  CHECK(loss() < 1e-6 * l0);
  CHECK(t.w.value(0, 1) == Approx(2.0).margin(1e-3));
}

TEST_CASE("global-norm clipping scales gradients down, never up", "[adamw]") {
  Toy<float> t;
  t.w.grad << 3.0f, 0.0f;
  t.b.grad << 4.0f;
  CHECK(nn::clip_grad_norm(t, 1.0) == Approx(5.0));
  CHECK(t.w.grad(0, 0) == Approx(0.6).epsilon(1e-5));
  CHECK(t.b.grad(0, 0) == Approx(0.8).epsilon(1e-5));
  CHECK(nn::clip_grad_norm(t, 10.0) == Approx(1.0).epsilon(1e-5));
  CHECK(t.b.grad(0, 0) == Approx(0.8).epsilon(1e-5));
}

TEST_CASE("AdamW state can be restored into a fresh optimiser", "[adamw]") {
  Toy<double> a, b;
  a.w.value << 1, 2;
  a.b.value << 3;
  b.w.value = a.w.value;
  b.b.value = a.b.value;
  nn::AdamW<double> oa, ob;
  for (int s = 0; s < 3; ++s) {
    a.w.grad << 0.1 * s, -0.2;
    a.b.grad << 0.3;
    oa.step(a, 0.01);
  }
  b.w.value = a.w.value;
  b.b.value = a.b.value;
  ob.init_state(b);
  ob.m() = oa.m();
  ob.v() = oa.v();
  ob.set_step_count(oa.step_count());
  a.w.grad << 0.5, 0.5;
  b.w.grad = a.w.grad;
  b.b.grad = a.b.grad;
  oa.step(a, 0.01);
  ob.step(b, 0.01);
  CHECK(a.w.value == b.w.value);
  CHECK(a.b.value == b.b.value);
}
