#include <catch2/catch.hpp>

#include <cmath>

#include <nanonav/nn/schedule.hpp>

using nanonav::nn::cosine_lr;

TEST_CASE("cosine annealing: base at 0, half at the middle, min at the end", "[nn][schedule]") {
  CHECK(cosine_lr(1e-3, 0, 100) == Approx(1e-3));
  CHECK(cosine_lr(1e-3, 50, 100) == Approx(0.5e-3));
  CHECK(cosine_lr(1e-3, 100, 100) == Approx(0.0).margin(1e-15));
  CHECK(cosine_lr(1e-3, 250, 100, 0, 1e-5) == Approx(1e-5));
  CHECK(cosine_lr(1e-3, 25, 100, 0, 1e-4) ==
        Approx(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(M_PI * 0.25))));
  for (int s = 1; s < 100; ++s) CHECK(cosine_lr(1.0, s, 100) <= cosine_lr(1.0, s - 1, 100));
}

TEST_CASE("linear warm-up then cosine over the remaining steps", "[nn][schedule]") {
  CHECK(cosine_lr(1.0, 0, 110, 10) == Approx(0.1));
  CHECK(cosine_lr(1.0, 4, 110, 10) == Approx(0.5));
  CHECK(cosine_lr(1.0, 9, 110, 10) == Approx(1.0));
  CHECK(cosine_lr(1.0, 10, 110, 10) == Approx(1.0));
  CHECK(cosine_lr(1.0, 60, 110, 10) == Approx(0.5));
  CHECK(cosine_lr(1.0, 110, 110, 10) == Approx(0.0).margin(1e-15));
}
