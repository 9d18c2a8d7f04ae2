#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <nanonav/nn/layers.hpp>

#include "gradcheck.hpp"

using namespace nanonav;
using gradcheck::MatD;
using gradcheck::ParamD;

namespace {

// The two probe points every layer is checked at: a random point and one near zero.
const double kScales[] = {1.0, 1e-3};

void randomise(ParamD& p, Rng& rng, double offset = 0.0) {
  for (Eigen::Index i = 0; i < p.value.size(); ++i) p.value.data()[i] = offset + 0.5 * rng.normal();
}

}  // namespace

TEST_CASE("Linear rows: gradients of x, weight and bias, with and without bias", "[nn]") {
  for (bool bias : {true, false}) {
    for (double scale : kScales) {
      Rng rng(1);
      nn::Linear<double> lin("lin", 6, 4, bias);
      lin.init(rng);
      std::vector<ParamD*> ps;
      lin.for_each_param([&](ParamD& p) { ps.push_back(&p); });
      CHECK(ps.size() == (bias ? 2u : 1u));
      const MatD x = gradcheck::random_matrix(5, 6, rng, scale);
      const int fails = gradcheck::check_layer(
          bias ? "linear" : "linear_nobias", x, ps,
          [&](const MatD& in, MatD& y) { y.resize(in.rows(), 4); lin.forward(in, y); },
          [&](const MatD& in, const MatD& dy, MatD& dx) { lin.backward(in, dy, dx); });
      CHECK(fails == 0);
    }
  }
}

TEST_CASE("Linear forward matches x W^T + b entry by entry", "[nn]") {
  nn::Linear<double> lin("l", 3, 2);
  lin.weight.value << 1, 2, 3, -1, 0, 4;
  lin.bias.value << 0.5, -2;
  MatD x(1, 3);
  x << 1, -1, 2;
  MatD y(1, 2);
  lin.forward(x, y);
  CHECK(y(0, 0) == Approx(1 - 2 + 6 + 0.5));
  CHECK(y(0, 1) == Approx(-1 + 0 + 8 - 2));
}

TEST_CASE("Linear columns (Conv1d kernel 1): gradients", "[nn]") {
  for (double scale : kScales) {
    Rng rng(2);
    nn::Linear<double> lin("tok", 5, 7, true, {7, 5, 1});
    CHECK(lin.weight.shape == std::vector<std::int64_t>{7, 5, 1});
    lin.init(rng);
    std::vector<ParamD*> ps{&lin.weight, &lin.bias};
    const MatD x = gradcheck::random_matrix(5, 9, rng, scale);
    const int fails = gradcheck::check_layer(
        "linear_cols", x, ps,
        [&](const MatD& in, MatD& y) { y.resize(7, in.cols()); lin.forward_cols(in, y); },
        [&](const MatD& in, const MatD& dy, MatD& dx) { lin.backward_cols(in, dy, dx); });
    CHECK(fails == 0);
  }
}

TEST_CASE("Linear init is U(+-1/sqrt(fan_in)) for weight and bias", "[nn]") {
  Rng rng(3);
  nn::Linear<double> lin("l", 16, 200);
  lin.init(rng);
  const double bound = 0.25;
  CHECK(lin.weight.value.maxCoeff() <= bound);
  CHECK(lin.weight.value.minCoeff() >= -bound);
  CHECK(lin.weight.value.maxCoeff() > 0.9 * bound);
  CHECK(lin.weight.value.minCoeff() < -0.9 * bound);
  CHECK(std::abs(lin.weight.value.mean()) < 0.02);
  CHECK(lin.bias.value.maxCoeff() <= bound);
  CHECK(lin.bias.value.minCoeff() >= -bound);
  CHECK(lin.bias.value.maxCoeff() > 0.5 * bound);
  CHECK(lin.weight.decay);
  CHECK_FALSE(lin.bias.decay);
  CHECK(lin.bias.shape == std::vector<std::int64_t>{200});
}

TEST_CASE("Embedding: N(0,1) init, lookup, accumulating gradient, bad token", "[nn]") {
  Rng rng(4);
  nn::Embedding<double> emb("embed", 50, 40);
  emb.init(rng);
  const double mean = emb.weight.value.mean();
  const double var = (emb.weight.value.array() - mean).square().mean();
  CHECK(std::abs(mean) < 0.05);
  CHECK(var == Approx(1.0).epsilon(0.08));
  CHECK_FALSE(emb.weight.decay);

  nn::Embedding<double> small("e", 4, 3);
  small.init(rng);
  const std::vector<std::uint8_t> idx{2, 0, 2, 3, 2};  // repeated rows must accumulate
  std::vector<ParamD*> ps{&small.weight};
  const int fails = gradcheck::check_layer(
      "embedding", MatD(), ps,
      [&](const MatD&, MatD& y) { y.resize(5, 3); small.forward(idx.data(), 5, y); },
      [&](const MatD&, const MatD& dy, MatD&) { small.backward(idx.data(), 5, dy); });
  CHECK(fails == 0);
  MatD y(5, 3);
  small.forward(idx.data(), 5, y);
  CHECK(y.row(3) == small.weight.value.row(3));

  const std::vector<int> bad{0, 4};
  MatD y2(2, 3);
  CHECK_THROWS_AS(small.forward(bad.data(), 2, y2), InvalidArgument);
}

TEST_CASE("LayerNorm: normalises rows; gradients with and without bias", "[nn]") {
  Rng rng(5);
  {
    nn::LayerNorm<double> ln("ln", 8);
    CHECK(ln.gain.value.isOnes());
    MatD x = gradcheck::random_matrix(3, 8, rng, 3.0);
    x.array() += 2.0;
    MatD y(3, 8);
    ln.forward(x, y);
    for (int r = 0; r < 3; ++r) {
      CHECK(std::abs(y.row(r).mean()) < 1e-12);
      const double var = y.row(r).array().square().mean();
      const double xvar = (x.row(r).array() - x.row(r).mean()).square().mean();
      CHECK(var == Approx(xvar / (xvar + 1e-5)).epsilon(1e-10));
    }
  }
  for (bool bias : {true, false}) {
    for (double scale : kScales) {
      nn::LayerNorm<double> ln("ln", 7, bias);
      CHECK(ln.has_bias() == bias);
      std::vector<ParamD*> ps;
      ln.for_each_param([&](ParamD& p) { ps.push_back(&p); });
      for (ParamD* p : ps) randomise(*p, rng, p == &ln.gain ? 1.0 : 0.0);
      MatD x = gradcheck::random_matrix(4, 7, rng, scale);
      const int fails = gradcheck::check_layer(
          bias ? "layernorm" : "layernorm_nobias", x, ps,
          [&](const MatD& in, MatD& y) { y.resize(in.rows(), 7); ln.forward(in, y); },
          [&](const MatD& in, const MatD& dy, MatD& dx) { ln.backward(in, dy, dx); });
      CHECK(fails == 0);
    }
  }
}

TEST_CASE("GELU is the exact erf form; gradient", "[nn]") {
  CHECK(nn::Gelu::value(1.0) == Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(nn::Gelu::value(-1.0) == Approx(-0.15865525393145707).epsilon(1e-14));
  CHECK(nn::Gelu::value(0.0) == 0.0);
  // The tanh approximation gives 0.8411919906; the exact form must not.
  CHECK(std::abs(nn::Gelu::value(1.0) - 0.8411919906082768) > 1e-4);
  for (double scale : kScales) {
    Rng rng(6);
    const MatD x = gradcheck::random_matrix(3, 11, rng, 2.0 * scale);
    const int fails = gradcheck::check_layer(
        "gelu", x, {},
        [](const MatD& in, MatD& y) { y.resize(in.rows(), in.cols()); nn::Gelu::forward<double>(in, y); },
        [](const MatD& in, const MatD& dy, MatD& dx) { nn::Gelu::backward<double>(in, dy, dx); });
    CHECK(fails == 0);
  }
}

TEST_CASE("Dropout: the mask is the documented stream (vector lanes or not), rng advanced alike", "[nn]") {
  // The definition: entry 4i + q from bits [16q, 16q + 16) of output i, dropped when below
  // round(p * 65536). p = 0.99999 rounds to 65535: only the draw 0xFFFF keeps an entry.
  for (double p : {0.0, 0.1, 0.5, 0.9, 0.99999}) {
    const nn::Dropout drop(p);
    const auto threshold = static_cast<std::uint64_t>(std::llround(p * 65536.0));
    for (std::size_t n : {0, 1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1001}) {
      Rng a(77 + n), b(77 + n);
      std::vector<std::uint8_t> got(n + 3, 9), want(n + 3, 9);
      drop.sample_mask(a, got.data(), n);
      for (std::size_t i = 0; i < n; i += 4) {
        const std::uint64_t u = b.next_u64();
        for (std::size_t q = 0; q < 4 && i + q < n; ++q) want[i + q] = ((u >> (16 * q)) & 0xFFFFu) >= threshold;
      }
      INFO("p = " << p << ", n = " << n);
      CHECK(got == want);  // includes the 3 bytes past n, untouched
      CHECK(a.state() == b.state());
    }
  }
}

TEST_CASE("Dropout: sample_mask_rows is sample_mask row after row (one stream)", "[nn]") {
  const nn::Dropout drop(0.3);
  for (std::size_t cols : {1, 3, 4, 31, 32, 33, 64, 100}) {
    for (std::size_t rows : {1, 2, 7}) {
      const std::size_t ld = cols + 5;  // gaps between rows stay untouched
      Rng a(300 + cols), b(300 + cols);
      std::vector<std::uint8_t> got(rows * ld, 9), want(rows * ld, 9);
      drop.sample_mask_rows(a, got.data(), rows, cols, ld);
      for (std::size_t r = 0; r < rows; ++r) drop.sample_mask(b, want.data() + r * ld, cols);
      INFO("rows " << rows << " cols " << cols);
      CHECK(got == want);
      CHECK(a.state() == b.state());
    }
  }
}

TEST_CASE("Dropout: seeded mask, inverted scaling, identity in eval, gradient", "[nn]") {
  const nn::Dropout drop(0.25);
  std::vector<std::uint8_t> m1(10001), m2(10001);
  Rng a(9), b(9);
  drop.sample_mask(a, m1.data(), m1.size());
  drop.sample_mask(b, m2.data(), m2.size());
  CHECK(m1 == m2);
  double kept = 0;
  for (auto v : m1) kept += v;
  CHECK(kept / m1.size() == Approx(0.75).margin(0.02));

  Rng rng(10);
  const MatD x = gradcheck::random_matrix(4, 5, rng);
  std::vector<std::uint8_t> mask(20);
  drop.sample_mask(rng, mask.data(), mask.size());
  MatD y(4, 5);
  drop.forward<double>(x, mask.data(), y, true);
  for (int i = 0; i < 20; ++i)
    CHECK(y.data()[i] == Approx(mask[i] ? x.data()[i] / 0.75 : 0.0).epsilon(1e-15));
  drop.forward<double>(x, mask.data(), y, false);
  CHECK(y == x);
  for (bool train : {true, false}) {
    const int fails = gradcheck::check_layer(
        "dropout", x, {},
        [&](const MatD& in, MatD& out) { out.resize(4, 5); drop.forward<double>(in, mask.data(), out, train); },
        [&](const MatD&, const MatD& dy, MatD& dx) { drop.backward<double>(mask.data(), dy, dx, train); });
    CHECK(fails == 0);
  }
}

TEST_CASE("Dropout: float forward (16 lanes at a time in AVX-512 builds) is mask ? x * scale : 0", "[nn]") {
  const nn::Dropout drop(0.3);
  const float sc = static_cast<float>(drop.scale());
  Rng rng(12);
  for (Eigen::Index cols : {1, 15, 16, 17, 70}) {
    nn::Mat<float> big(5, cols + 3);  // x and y as blocks of wider matrices: row strides honoured
    for (Eigen::Index i = 0; i < big.size(); ++i) big.data()[i] = static_cast<float>(rng.uniform() * 2 - 1);
    std::vector<std::uint8_t> mask(static_cast<std::size_t>(4 * cols));
    drop.sample_mask(rng, mask.data(), mask.size());
    nn::Mat<float> out = nn::Mat<float>::Constant(5, cols + 3, 7.0f);
    drop.forward<float>(big.block(1, 2, 4, cols), mask.data(), out.block(1, 2, 4, cols), true);
    int bad = 0, touched = 0;
    for (Eigen::Index r = 0; r < 5; ++r)
      for (Eigen::Index c = 0; c < cols + 3; ++c) {
        const bool inside = r >= 1 && c >= 2 && c < cols + 2;
        if (!inside) {
          touched += out(r, c) != 7.0f;
          continue;
        }
        const std::uint8_t m = mask[static_cast<std::size_t>((r - 1) * cols + (c - 2))];
        bad += out(r, c) != (m ? big(r, c) * sc : 0.0f);
      }
    INFO("cols " << cols);
    CHECK(bad == 0);
    CHECK(touched == 0);
  }
}

TEST_CASE("Residual add and mean-pool (both token orders): gradients", "[nn]") {
  Rng rng(11);
  const MatD f = gradcheck::random_matrix(3, 4, rng);
  const MatD x = gradcheck::random_matrix(3, 4, rng);
  MatD df(3, 4);
  const int fails = gradcheck::check_layer(
      "residual", x, {},
      [&](const MatD& in, MatD& y) { y.resize(3, 4); nn::residual_forward<double>(in, f, y); },
      [&](const MatD&, const MatD& dy, MatD& dx) { df.setConstant(2.0); nn::residual_backward<double>(dy, dx, df); });
  CHECK(fails == 0);
  const MatD gy = gradcheck::random_matrix(3, 4, rng);
  MatD gx = MatD::Constant(3, 4, 1.0);
  df.setConstant(2.0);
  nn::residual_backward<double>(gy, gx, df);
  CHECK((gx.array() - 1.0 - gy.array()).abs().maxCoeff() < 1e-15);
  CHECK((df.array() - 2.0 - gy.array()).abs().maxCoeff() < 1e-15);

  const int B = 3, T = 5;
  for (auto order : {nn::TokenOrder::SampleMajor, nn::TokenOrder::TokenMajor}) {
    const MatD xt = gradcheck::random_matrix(B * T, 4, rng);
    MatD y(B, 4);
    nn::mean_pool_forward<double>(xt, B, T, order, y);
    for (int b = 0; b < B; ++b) {
      Eigen::RowVectorXd s = Eigen::RowVectorXd::Zero(4);
      for (int t = 0; t < T; ++t)
        s += xt.row(order == nn::TokenOrder::TokenMajor ? t * B + b : b * T + t);
      CHECK((y.row(b) - s / T).norm() < 1e-12);
    }
    const int pf = gradcheck::check_layer(
        "mean_pool", xt, {},
        [&](const MatD& in, MatD& out) { out.resize(B, 4); nn::mean_pool_forward<double>(in, B, T, order, out); },
        [&](const MatD&, const MatD& dy, MatD& dx) { nn::mean_pool_backward<double>(dy, B, T, order, dx); });
    CHECK(pf == 0);
  }
}

TEST_CASE("Float and double layers agree to float tolerance", "[nn]") {
  Rng rng(12);
  nn::Linear<double> ld("l", 8, 6);
  ld.init(rng);
  nn::Linear<float> lf("l", 8, 6);
  lf.weight.value = ld.weight.value.cast<float>();
  lf.bias.value = ld.bias.value.cast<float>();
  nn::LayerNorm<double> nd("n", 6);
  nn::LayerNorm<float> nf("n", 6);
  const MatD x = gradcheck::random_matrix(5, 8, rng);
  MatD yd(5, 6), zd(5, 6);
  nn::Mat<float> yf(5, 6), zf(5, 6);
  ld.forward(x, yd);
  nd.forward(yd, zd);
  nn::Gelu::forward<double>(zd, yd);
  lf.forward(x.cast<float>(), yf);
  nf.forward(yf, zf);
  nn::Gelu::forward<float>(zf, yf);
  CHECK((yf.cast<double>() - yd).cwiseAbs().maxCoeff() < 1e-5);
}

TEST_CASE("LayerNorm in float agrees with double, forward and backward, with a large row mean", "[nn]") {
  Rng rng(13);
  // (d = 1 is degenerate: the output is the bias, and dx is float noise times 1/sqrt(eps).)
  // The tolerances are a few float ulps of the row with mean 30, whose x - mean keeps only
  // ~20 bits in any float implementation.
  for (int d : {2, 5, 16, 17, 32, 48, 64, 70, 112, 128})
    for (bool with_bias : {false, true}) {
      nn::LayerNorm<double> nd("n", d, with_bias);
      nn::LayerNorm<float> nf("n", d, with_bias);
      for (Eigen::Index j = 0; j < d; ++j) {  // gains and biases away from their init
        nd.gain.value(0, j) = 0.5 + rng.uniform();
        if (with_bias) nd.bias.value(0, j) = rng.uniform() - 0.5;
      }
      nf.gain.value = nd.gain.value.cast<float>();
      if (with_bias) nf.bias.value = nd.bias.value.cast<float>();
      MatD x = gradcheck::random_matrix(7, d, rng);
      x.row(2).array() += 30.0;  // a large mean: the two-pass statistics must keep precision
      MatD dy = gradcheck::random_matrix(7, d, rng);
      x = x.cast<float>().cast<double>();  // both paths see the same (float) inputs
      dy = dy.cast<float>().cast<double>();
      MatD yd(7, d), dxd = MatD::Constant(7, d, 0.25);
      nn::Mat<float> yf(7, d), dxf = nn::Mat<float>::Constant(7, d, 0.25f);
      nd.forward(x, yd);
      nf.forward(x.cast<float>(), yf);
      nd.gain.grad.setConstant(0.5);
      nf.gain.grad.setConstant(0.5f);
      if (with_bias) {
        nd.bias.grad.setConstant(0.5);
        nf.bias.grad.setConstant(0.5f);
      }
      nd.backward(x, dy, dxd);  // adds into dx and the grads
      nf.backward(x.cast<float>(), dy.cast<float>(), dxf);
      INFO("d " << d << ", bias " << with_bias);
      CHECK((yf.cast<double>() - yd).cwiseAbs().maxCoeff() < 1e-5);
      CHECK((dxf.cast<double>() - dxd).cwiseAbs().maxCoeff() < 1e-5);
      CHECK((nf.gain.grad.cast<double>() - nd.gain.grad).cwiseAbs().maxCoeff() < 1e-5);
      if (with_bias) CHECK((nf.bias.grad.cast<double>() - nd.bias.grad).cwiseAbs().maxCoeff() < 1e-5);
      // y may alias x (the TRM normalises its state in place)
      nn::Mat<float> xf = x.cast<float>();
      nf.forward(xf, xf);
      CHECK(xf == yf);
    }
}

namespace {

// forward with stats_out, then forward_from_stats and backward with stats_in against the forms
// that compute the statistics themselves: the same bits.
template <class S>
void check_kept_stats(int d, bool with_bias, Rng& rng) {
  nn::LayerNorm<S> n("n", d, with_bias);
  for (Eigen::Index j = 0; j < d; ++j) {
    n.gain.value(0, j) = static_cast<S>(0.5 + rng.uniform());
    if (with_bias) n.bias.value(0, j) = static_cast<S>(rng.uniform() - 0.5);
  }
  const Eigen::Index rows = 11;  // two blocks of four rows and three single rows
  const nn::Mat<S> x = gradcheck::random_matrix(rows, d, rng).cast<S>();
  const nn::Mat<S> dy = gradcheck::random_matrix(rows, d, rng).cast<S>();
  std::vector<S> st(static_cast<std::size_t>(2 * rows), S(-7));
  nn::Mat<S> y0(rows, d), y1(rows, d), y2(rows, d);
  n.forward(x, y0);
  n.forward(x, y1, st.data());
  n.forward_from_stats(x, st.data(), y2);
  INFO("d " << d << ", bias " << with_bias);
  for (Eigen::Index r = 0; r < rows; ++r) {  // the stats are the row's mean and 1 / std
    const auto xr = x.row(r).template cast<double>().array();
    const double mean = xr.mean(), var = (xr - mean).square().mean();
    CHECK(std::abs(st[static_cast<std::size_t>(2 * r)] - mean) < 1e-5);
    CHECK(std::abs(st[static_cast<std::size_t>(2 * r + 1)] - 1.0 / std::sqrt(var + 1e-5)) < 1e-4 / std::sqrt(var + 1e-5));
  }
  CHECK(y1 == y0);
  CHECK(y2 == y0);
  nn::Mat<S> dx0 = nn::Mat<S>::Constant(rows, d, S(0.25)), dx1 = dx0;
  n.gain.grad.setConstant(S(0.5));
  if (with_bias) n.bias.grad.setConstant(S(0.5));
  n.backward(x, dy, dx0);
  const nn::Mat<S> dg0 = n.gain.grad, db0 = n.bias.grad;
  n.gain.grad.setConstant(S(0.5));
  if (with_bias) n.bias.grad.setConstant(S(0.5));
  n.backward(x, dy, dx1, st.data());
  CHECK(dx1 == dx0);
  CHECK(n.gain.grad == dg0);
  CHECK(n.bias.grad == db0);
}

}  // namespace

TEST_CASE("LayerNorm: statistics kept by forward give the same bits in forward_from_stats and backward", "[nn]") {
  Rng rng(29);
  for (int d : {5, 16, 24, 64, 128})  // 16, 64, 128: the AVX-512 float path; 5, 24: the Eigen loop
    for (bool with_bias : {false, true}) {
      check_kept_stats<float>(d, with_bias, rng);
      check_kept_stats<double>(d, with_bias, rng);
    }
}
