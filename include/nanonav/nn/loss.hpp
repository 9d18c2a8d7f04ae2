#pragma once
/// Softmax cross-entropy over the 5 navigation actions, with a set of equally optimal actions.
#include <cmath>
#include <cstdint>
#include <string>

#include "../detail/assert.hpp"
#include "../errors.hpp"
#include "tensor.hpp"

namespace nanonav::nn {

/// The mask of a single label: bit `label` set.
inline std::uint8_t label_mask(int label) {
  if (label < 0 || label >= 8)
    throw InvalidArgument("label_mask: label " + std::to_string(label) + " is outside [0, 8)");
  return static_cast<std::uint8_t>(1u << label);
}

/// What masked_cross_entropy() measured over its rows.
struct LossSums {
  double weighted_loss = 0.0;  ///< Σ_i w_i ℓ_i
  int correct = 0;             ///< rows whose argmax (first on ties) is in the mask
};

/// Per row i of `logits` (n, k <= 8): ℓ_i = -log Σ_{a ∈ M_i} softmax(z_i)_a, where bit a of
/// masks[i] marks action a as optimal (a single label is a one-bit mask). This is
/// logsumexp(z_i) - logsumexp(z_i restricted to M_i).
/// If `dlogits` is not null, adds grad_scale * w_i * dℓ_i/dz_i into it, where
/// dℓ/dz_a = p_a - [a ∈ M] p_a / Σ_{b ∈ M} p_b. `weights` may be null (all 1).
/// Throws InvalidArgument for an empty mask or one with a bit at or beyond k.
template <class S>
inline LossSums masked_cross_entropy(const Eigen::Ref<const Mat<S>>& logits,
                                     const std::uint8_t* masks, const float* weights,
                                     double grad_scale, Mat<S>* dlogits) {
  const Eigen::Index n = logits.rows(), k = logits.cols();
  NANONAV_ASSERT(k >= 1 && k <= 8);
  NANONAV_ASSERT(dlogits == nullptr || (dlogits->rows() == n && dlogits->cols() == k));
  LossSums out;
  double p[8];
  for (Eigen::Index i = 0; i < n; ++i) {
    const unsigned m = masks[i];
    if (m == 0 || (m >> k) != 0)
      throw InvalidArgument("masked_cross_entropy: row " + std::to_string(i) + " has mask " +
                            std::to_string(m) + ", which selects no action or one beyond " +
                            std::to_string(k - 1));
    double zmax = static_cast<double>(logits(i, 0));
    Eigen::Index arg = 0;
    for (Eigen::Index a = 1; a < k; ++a)
      if (static_cast<double>(logits(i, a)) > zmax) zmax = static_cast<double>(logits(i, a)), arg = a;
    double total = 0.0, in_mask = 0.0;
    for (Eigen::Index a = 0; a < k; ++a) {
      p[a] = std::exp(static_cast<double>(logits(i, a)) - zmax);
      total += p[a];
      if (m & (1u << a)) in_mask += p[a];
    }
    const double w = weights ? static_cast<double>(weights[i]) : 1.0;
    out.weighted_loss += w * (std::log(total) - std::log(in_mask));
    if (m & (1u << arg)) ++out.correct;
    if (dlogits) {
      const double sc = grad_scale * w;
      for (Eigen::Index a = 0; a < k; ++a) {
        const double g = p[a] / total - ((m & (1u << a)) ? p[a] / in_mask : 0.0);
        (*dlogits)(i, a) += static_cast<S>(sc * g);
      }
    }
  }
  return out;
}

/// The "no target" value of masked_mse's targets.
inline constexpr std::uint16_t kNoTarget = 0xFFFF;

/// Squared error against integer targets scaled by `target_scale`, averaged per sample over
/// the entries that have a target. Sample i (of n) has g predictions y[i * sample_stride +
/// j * entry_stride] and targets t[i * g + j] (kNoTarget: none); ℓ_i = (1/|V_i|) Σ_{j ∈ V_i}
/// (y_ij - target_scale t_ij)², 0 when V_i is empty. Returns Σ_i ℓ_i; if `dy` is not null (same
/// layout as y), adds grad_scale * dℓ_i/dy_ij into it.
template <class S>
inline double masked_mse(const S* y, Eigen::Index sample_stride, Eigen::Index entry_stride,
                         const std::uint16_t* t, int n, int g, double target_scale,
                         double grad_scale, S* dy) {
  double total = 0.0;
  for (int i = 0; i < n; ++i) {
    const std::uint16_t* ti = t + static_cast<std::ptrdiff_t>(i) * g;
    int count = 0;
    for (int j = 0; j < g; ++j) count += ti[j] != kNoTarget;
    if (count == 0) continue;
    double sum = 0.0;
    const double inv = 1.0 / count;
    for (int j = 0; j < g; ++j) {
      if (ti[j] == kNoTarget) continue;
      const Eigen::Index k = i * sample_stride + j * entry_stride;
      const double e = static_cast<double>(y[k]) - target_scale * ti[j];
      sum += e * e;
      if (dy) dy[k] += static_cast<S>(grad_scale * 2.0 * e * inv);
    }
    total += sum * inv;
  }
  return total;
}

}  // namespace nanonav::nn
