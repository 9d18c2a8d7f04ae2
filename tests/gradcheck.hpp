#pragma once
// A generic central-difference gradient checker, in double.
//
// A layer y = F(x; θ) is checked through the scalar f = <y, r> for a fixed random r: its
// backward, fed dy = r, must give df/dx and df/dθ. Gradients are PRE-FILLED with a known value
// before backward and the value is subtracted afterwards, which proves that backward adds into
// them instead of overwriting. Every entry is checked, or a seeded sample when there are many.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <nanonav/detail/rng.hpp>
#include <nanonav/nn/tensor.hpp>

namespace gradcheck {

using MatD = nanonav::nn::Mat<double>;
using ParamD = nanonav::nn::Param<double>;

/// The value gradients hold before backward runs.
inline constexpr double kPrefill = 0.375;

struct Options {
  double h = 1e-5;              // central-difference step
  double h_input = 0.0;         // step for the input entries in check_layer (0: h)
  double rtol = 1e-5;           // |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)
  double atol = 1e-7;
  std::size_t max_entries = 160;  // per tensor; more are sampled (seeded)
  std::uint64_t seed = 12345;
};

/// A matrix of N(0, 1) * scale entries.
inline MatD random_matrix(Eigen::Index rows, Eigen::Index cols, nanonav::Rng& rng,
                          double scale = 1.0) {
  MatD m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * rng.normal();
  return m;
}

inline double dot(const MatD& a, const MatD& b) { return a.cwiseProduct(b).sum(); }

/// The indices of [0, n) to check: all of them, or max_entries drawn without replacement.
inline std::vector<std::size_t> sample_indices(std::size_t n, const Options& opt) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  if (n <= opt.max_entries) return idx;
  nanonav::Rng rng(opt.seed ^ n);
  for (std::size_t i = 0; i < opt.max_entries; ++i)
    std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(opt.max_entries);
  return idx;
}

/// Compares analytic[i] with (f(x + h e_i) - f(x - h e_i)) / 2h for the sampled i. x is
/// restored. Reports the tensor, index, expected (numeric) and actual (analytic) on failure.
/// Returns the number of entries that failed.
inline int check_entries(const std::string& what, double* x, const double* analytic,
                         std::size_t n, const std::function<double()>& objective,
                         const Options& opt = {}) {
  int failures = 0;
  for (std::size_t i : sample_indices(n, opt)) {
    const double saved = x[i];
    x[i] = saved + opt.h;
    const double fp = objective();
    x[i] = saved - opt.h;
    const double fm = objective();
    x[i] = saved;
    const double numeric = (fp - fm) / (2.0 * opt.h);
    const double a = analytic[i];
    const double tol = opt.atol + opt.rtol * std::max(std::abs(a), std::abs(numeric));
    if (!(std::abs(a - numeric) <= tol)) {
      if (++failures <= 5) {
        std::ostringstream os;
        os << what << "[" << i << "]: expected (numeric) " << numeric << ", actual (analytic) "
           << a << ", diff " << std::abs(a - numeric) << " > tol " << tol;
        FAIL_CHECK(os.str());
      }
    }
  }
  return failures;
}

/// Checks a layer y = F(x; params). `forward(x, y)` computes y (resizing it is its job);
/// `backward(x, dy, dx)` must ADD df/dx into dx and df/dθ into each param's grad.
/// x may be empty (integer inputs): then only the parameters are checked.
/// Returns the total number of failed entries (also reported through Catch).
inline int check_layer(const std::string& what, MatD x, const std::vector<ParamD*>& params,
                       const std::function<void(const MatD&, MatD&)>& forward,
                       const std::function<void(const MatD&, const MatD&, MatD&)>& backward,
                       const Options& opt = {}) {
  nanonav::Rng rng(opt.seed + 7);
  MatD y;
  forward(x, y);
  const MatD r = random_matrix(y.rows(), y.cols(), rng);
  const auto objective = [&]() {
    MatD yy;
    forward(x, yy);
    return dot(yy, r);
  };
  for (ParamD* p : params) p->grad.setConstant(kPrefill);
  MatD dx = MatD::Constant(x.rows(), x.cols(), kPrefill);
  backward(x, r, dx);
  dx.array() -= kPrefill;
  int failures = 0;
  if (x.size() > 0) {
    Options ox = opt;
    if (opt.h_input > 0) ox.h = opt.h_input;
    failures += check_entries(what + " d/dx", x.data(), dx.data(),
                              static_cast<std::size_t>(x.size()), objective, ox);
  }
  for (ParamD* p : params) {
    MatD g = p->grad.array() - kPrefill;
    failures += check_entries(what + " d/d" + p->name, p->value.data(), g.data(),
                              static_cast<std::size_t>(p->value.size()), objective, opt);
  }
  return failures;
}

}  // namespace gradcheck
