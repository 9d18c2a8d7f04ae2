#pragma once
/// Decoupled AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) as
/// torch.optim.AdamW computes it, and global-norm gradient clipping as
/// torch.nn.utils.clip_grad_norm_. Both work on any model with a `for_each_param` visitor.
#include <cmath>
#include <cstdint>
#include <vector>

#include "../detail/assert.hpp"
#include "../errors.hpp"
#include "tensor.hpp"

namespace nanonav::nn {

/// AdamW hyper-parameters (PyTorch's defaults, weight decay 0.01).
struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  /// When true, parameters with decay == false (biases, norm gains, embeddings) are not
  /// decayed; when false (PyTorch's default) every parameter is.
  bool exempt_no_decay = false;

  /// Throws InvalidArgument for betas outside [0, 1), eps <= 0 or weight decay < 0.
  void validate() const {
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0) ||
        !(weight_decay >= 0))
      throw InvalidArgument("AdamW: need 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0");
  }
};

/// The optimiser. State (m, v) is indexed by parameter slot, the position of the parameter in
/// the model's for_each_param order, never by address; with step_count() it is everything a
/// checkpoint must save to resume exactly.
template <class S>
class AdamW {
 public:
  explicit AdamW(const AdamWConfig& cfg = {}) : cfg_(cfg) { cfg_.validate(); }

  /// One update with learning rate lr, from the gradients in the model's params:
  ///   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  ///   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  template <class Model>
  void step(Model& model, double lr) {
    init_state(model);
    ++t_;
    const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t_));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(cfg_.beta2, static_cast<double>(t_)));
    const S b1 = static_cast<S>(cfg_.beta1), b2 = static_cast<S>(cfg_.beta2);
    const S omb1 = static_cast<S>(1.0 - cfg_.beta1), omb2 = static_cast<S>(1.0 - cfg_.beta2);
    const S step_size = static_cast<S>(lr / bc1);
    const S inv_bc2_sqrt = static_cast<S>(1.0 / bc2_sqrt);
    const S eps = static_cast<S>(cfg_.eps);
    std::size_t slot = 0;
    model.for_each_param([&](Param<S>& p) {
      Mat<S>& m = m_[slot];
      Mat<S>& v = v_[slot];
      ++slot;
      const bool decay = !cfg_.exempt_no_decay || p.decay;
      const S keep = static_cast<S>(1.0 - (decay ? lr * cfg_.weight_decay : 0.0));
      S* w = p.value.data();
      const S* g = p.grad.data();
      S* mm = m.data();
      S* vv = v.data();
      const Eigen::Index n = p.value.size();
      for (Eigen::Index i = 0; i < n; ++i) {
        w[i] *= keep;
        mm[i] = b1 * mm[i] + omb1 * g[i];
        vv[i] = b2 * vv[i] + omb2 * g[i] * g[i];
        w[i] -= step_size * mm[i] / (std::sqrt(vv[i]) * inv_bc2_sqrt + eps);
      }
    });
  }

  /// Sizes m and v like the model's parameters (zeros) if they are not yet: a checkpoint
  /// loader calls this, then fills m(), v() and set_step_count().
  template <class Model>
  void init_state(const Model& model) {
    std::size_t count = 0;
    model.for_each_param([&](const Param<S>&) { ++count; });
    if (m_.size() == count) return;
    NANONAV_ASSERT(m_.empty());  // a different model: a programmer error
    model.for_each_param([&](const Param<S>& p) {
      m_.push_back(Mat<S>::Zero(p.value.rows(), p.value.cols()));
      v_.push_back(Mat<S>::Zero(p.value.rows(), p.value.cols()));
    });
  }

  std::int64_t step_count() const noexcept { return t_; }
  void set_step_count(std::int64_t t) noexcept { t_ = t; }
  std::vector<Mat<S>>& m() noexcept { return m_; }
  std::vector<Mat<S>>& v() noexcept { return v_; }
  const std::vector<Mat<S>>& m() const noexcept { return m_; }
  const std::vector<Mat<S>>& v() const noexcept { return v_; }
  const AdamWConfig& config() const noexcept { return cfg_; }

 private:
  AdamWConfig cfg_;
  std::vector<Mat<S>> m_, v_;  // one per parameter slot
  std::int64_t t_ = 0;
};

/// Scales all gradients so that their global L2 norm is at most max_norm (when it is larger:
/// factor max_norm / (norm + 1e-6), as PyTorch). Returns the norm before clipping. A
/// max_norm <= 0 only measures.
template <class Model>
inline double clip_grad_norm(Model& model, double max_norm) {
  double sq = 0.0;
  model.for_each_param([&](const auto& p) { sq += p.grad.template cast<double>().squaredNorm(); });
  const double norm = std::sqrt(sq);
  if (max_norm > 0.0) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
      model.for_each_param([&](auto& p) {
        using S = typename std::decay_t<decltype(p.value)>::Scalar;
        p.grad *= static_cast<S>(coef);
      });
  }
  return norm;
}

}  // namespace nanonav::nn
