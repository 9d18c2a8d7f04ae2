#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <nanonav/nn/loss.hpp>

#include "gradcheck.hpp"

using namespace nanonav;
using gradcheck::MatD;

TEST_CASE("one-label masked cross-entropy equals the usual softmax cross-entropy", "[nn][loss]") {
  MatD z(1, 5);
  z << 1.0, -0.5, 2.0, 0.0, 0.25;
  const std::uint8_t m = nn::label_mask(2);
  const auto s = nn::masked_cross_entropy<double>(z, &m, nullptr, 1.0, nullptr);
  double lse = 0;
  for (int a = 0; a < 5; ++a) lse += std::exp(z(0, a));
  CHECK(s.weighted_loss == Approx(std::log(lse) - 2.0).epsilon(1e-14));
  CHECK(s.correct == 1);
}

TEST_CASE("a mask of equally optimal actions: loss = -log of their total probability", "[nn][loss]") {
  MatD z(3, 5);
  z << 0.3, 1.2, -0.7, 0.1, 2.0,   //
      5.0, 5.0, 5.0, 5.0, 5.0,     //
      -1.0, 0.0, 1.0, 2.0, 3.0;
  const std::vector<std::uint8_t> masks{0b00011, 0b11111, 0b01000};
  const std::vector<float> w{1.0f, 2.0f, 0.5f};
  const auto s = nn::masked_cross_entropy<double>(z, masks.data(), w.data(), 1.0, nullptr);
  const auto p = [&](int r, int a) {
    double t = 0;
    for (int b = 0; b < 5; ++b) t += std::exp(z(r, b));
    return std::exp(z(r, a)) / t;
  };
  const double l0 = -std::log(p(0, 0) + p(0, 1));
  const double l2 = -std::log(p(2, 3));
  CHECK(s.weighted_loss == Approx(l0 + 2.0 * 0.0 + 0.5 * l2).epsilon(1e-13));
  // Row 0: argmax is Stay (not optimal); row 1: tie -> first (Up) is in the full mask; row 2: Stay.
  CHECK(s.correct == 1);
}

TEST_CASE("masked cross-entropy gradient (masks, weights, scale) by central differences", "[nn][loss]") {
  Rng rng(21);
  const int n = 6;
  const std::vector<std::uint8_t> masks{0b00001, 0b00110, 0b10000, 0b01011, 0b11111, 0b01000};
  const std::vector<float> w{1.0f, 0.5f, 2.0f, 1.5f, 1.0f, 0.25f};
  for (double scale : {1.0, 1e-3}) {
    for (const float* wp : {static_cast<const float*>(nullptr), w.data()}) {
      MatD z = gradcheck::random_matrix(n, 5, rng, 2.0 * scale);
      const double gs = 1.0 / n;
      MatD dz = MatD::Constant(n, 5, gradcheck::kPrefill);
      nn::masked_cross_entropy<double>(z, masks.data(), wp, gs, &dz);
      dz.array() -= gradcheck::kPrefill;
      const auto f = [&]() { return gs * nn::masked_cross_entropy<double>(z, masks.data(), wp, gs, nullptr).weighted_loss; };
      CHECK(gradcheck::check_entries("loss d/dz", z.data(), dz.data(), n * 5, f) == 0);
    }
  }
}

TEST_CASE("masked cross-entropy rejects empty and out-of-range masks", "[nn][loss]") {
  MatD z = MatD::Zero(1, 5);
  const std::uint8_t empty = 0, beyond = 0b100000;
  CHECK_THROWS_AS(nn::masked_cross_entropy<double>(z, &empty, nullptr, 1.0, nullptr), InvalidArgument);
  CHECK_THROWS_AS(nn::masked_cross_entropy<double>(z, &beyond, nullptr, 1.0, nullptr), InvalidArgument);
  CHECK_THROWS_AS(nn::label_mask(9), InvalidArgument);
}

TEST_CASE("masked squared error: value by hand, per-sample mean over targets, gradient", "[nn][loss]") {
  // Two samples of three entries, stored entry-major (entry j of sample i at j * 2 + i), as the
  // TRM's token-major rows are.
  std::vector<double> y{0.5, -1.0, 2.0, 0.0, 0.25, 3.0};
  const std::uint16_t none = nn::kNoTarget;
  const std::vector<std::uint16_t> t{1, none, 4,   // sample 0: entries 0 and 2 have targets
                                     none, none, none};  // sample 1: none at all
  const double scale = 0.5;
  // sample 0: ((0.5 - 0.5)^2 + (0.25 - 2)^2) / 2; sample 1 contributes nothing.
  const double expect = (0.0 + 1.75 * 1.75) / 2.0;
  CHECK(nn::masked_mse<double>(y.data(), 1, 2, t.data(), 2, 3, scale, 1.0, nullptr) == Approx(expect).epsilon(1e-15));
  std::vector<double> dy(y.size(), 0.125);  // pre-filled: the gradient is added
  nn::masked_mse<double>(y.data(), 1, 2, t.data(), 2, 3, scale, 3.0, dy.data());
  const auto objective = [&] { return 3.0 * nn::masked_mse<double>(y.data(), 1, 2, t.data(), 2, 3, scale, 1.0, nullptr); };
  for (double& v : dy) v -= 0.125;
  CHECK(gradcheck::check_entries("masked_mse d/dy", y.data(), dy.data(), y.size(), objective) == 0);
  CHECK(dy[1] == 0.0);  // no target: no gradient
  CHECK(dy[3] == 0.0);
  CHECK(dy[4] != 0.0);
}
