#pragma once
/// Hand-written layers with forward and backward passes.
///
/// Conventions:
/// - Activations are row-major (rows, features) blocks: one row per token (or sample).
/// - A layer's forward cache is its input `x` (and, for Dropout, its mask), which the caller
///   keeps and passes back to `backward`: this lets one layer be applied many times (the TRM's
///   recursion) with one cache per application and no hidden state in the layer.
/// - `backward` ADDS into `dx` and into the parameters' `grad` (see nn/tensor.hpp).
/// - Initialisation follows PyTorch's defaults, drawn from nanonav::Rng.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../detail/assert.hpp"
#include "../detail/rng.hpp"
#include "../errors.hpp"
#include "tensor.hpp"

namespace nanonav::nn {

template <class S>
using CRef = Eigen::Ref<const Mat<S>>;
template <class S>
using MRef = Eigen::Ref<Mat<S>>;

// ---- Linear -------------------------------------------------------------------------------

/// y = x Wᵀ + b (reference: torch.nn.Linear), or along columns Y = W X + b 1ᵀ
/// (reference: torch.nn.Conv1d with kernel_size 1, i.e. a Linear over the channel-first axis).
template <class S>
struct Linear {
  Param<S> weight;  // (out, in)
  Param<S> bias;    // (out), stored (1, out); empty when the layer has no bias

  Linear() = default;
  /// `name` is the prefix: parameters are "<name>.weight" and "<name>.bias".
  /// `torch_weight_shape` overrides the recorded PyTorch shape (e.g. {out, in, 1} for Conv1d).
  Linear(const std::string& name, int in, int out, bool with_bias = true,
         std::vector<std::int64_t> torch_weight_shape = {})
      : weight(name + ".weight",
               torch_weight_shape.empty() ? std::vector<std::int64_t>{out, in}
                                          : std::move(torch_weight_shape),
               out, in, true) {
    NANONAV_ASSERT(in > 0 && out > 0);
    if (with_bias) bias = Param<S>(name + ".bias", {out}, 1, out, false);
  }

  int in_features() const noexcept { return static_cast<int>(weight.value.cols()); }
  int out_features() const noexcept { return static_cast<int>(weight.value.rows()); }
  bool has_bias() const noexcept { return bias.value.size() > 0; }

  /// PyTorch default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
  void init(Rng& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features()));
    for (Eigen::Index i = 0; i < weight.value.size(); ++i)
      weight.value.data()[i] = static_cast<S>((2.0 * rng.uniform() - 1.0) * bound);
    for (Eigen::Index i = 0; i < bias.value.size(); ++i)
      bias.value.data()[i] = static_cast<S>((2.0 * rng.uniform() - 1.0) * bound);
  }

  /// x (n, in) -> y (n, out).
  void forward(const CRef<S>& x, MRef<S> y) const {
    NANONAV_ASSERT(x.cols() == in_features() && y.cols() == out_features() && y.rows() == x.rows());
    y.noalias() = x * weight.value.transpose();
    if (has_bias()) y.rowwise() += bias.value.row(0);
  }
  /// Parameter gradients of forward(): dW += dyᵀ x, db += Σ_rows dy.
  void accumulate_param_grads(const CRef<S>& x, const CRef<S>& dy) {
    weight.grad.noalias() += dy.transpose() * x;
    if (has_bias()) bias.grad.row(0) += dy.colwise().sum();
  }
  /// Backward of forward(): parameter gradients and dx += dy W.
  void backward(const CRef<S>& x, const CRef<S>& dy, MRef<S> dx) {
    accumulate_param_grads(x, dy);
    dx.noalias() += dy * weight.value;
  }

  /// Channel-first: x (in, m) -> y (out, m).
  void forward_cols(const CRef<S>& x, MRef<S> y) const {
    NANONAV_ASSERT(x.rows() == in_features() && y.rows() == out_features() && y.cols() == x.cols());
    y.noalias() = weight.value * x;
    if (has_bias()) y.colwise() += bias.value.row(0).transpose();
  }
  /// Parameter gradients of forward_cols(): dW += dy xᵀ, db += Σ_cols dy.
  void accumulate_param_grads_cols(const CRef<S>& x, const CRef<S>& dy) {
    weight.grad.noalias() += dy * x.transpose();
    if (has_bias()) bias.grad.row(0) += dy.rowwise().sum().transpose();
  }
  /// Backward of forward_cols(): parameter gradients and dx += Wᵀ dy.
  void backward_cols(const CRef<S>& x, const CRef<S>& dy, MRef<S> dx) {
    accumulate_param_grads_cols(x, dy);
    dx.noalias() += weight.value.transpose() * dy;
  }

  template <class F>
  void for_each_param(F&& f) {
    f(weight);
    if (has_bias()) f(bias);
  }
  template <class F>
  void for_each_param(F&& f) const {
    f(weight);
    if (has_bias()) f(bias);
  }
};

// ---- Embedding ----------------------------------------------------------------------------

/// y[i] = W[idx[i]] (reference: torch.nn.Embedding).
template <class S>
struct Embedding {
  Param<S> weight;  // (vocab, dim)

  Embedding() = default;
  Embedding(const std::string& name, int vocab, int dim)
      : weight(name + ".weight", {vocab, dim}, vocab, dim, false) {
    NANONAV_ASSERT(vocab > 0 && dim > 0);
  }
  int vocab() const noexcept { return static_cast<int>(weight.value.rows()); }
  int dim() const noexcept { return static_cast<int>(weight.value.cols()); }

  /// PyTorch default: N(0, 1).
  void init(Rng& rng) {
    for (Eigen::Index i = 0; i < weight.value.size(); ++i)
      weight.value.data()[i] = static_cast<S>(rng.normal());
  }

  /// idx[0..n) -> y (n, dim). Throws InvalidArgument for an index outside [0, vocab).
  template <class I>
  void forward(const I* idx, Eigen::Index n, MRef<S> y) const {
    NANONAV_ASSERT(y.rows() == n && y.cols() == dim());
    for (Eigen::Index i = 0; i < n; ++i) {
      const long long t = static_cast<long long>(idx[i]);
      if (t < 0 || t >= vocab())
        throw InvalidArgument("Embedding: token " + std::to_string(t) + " at position " +
                              std::to_string(i) + " is outside the vocabulary [0, " +
                              std::to_string(vocab()) + ")");
      y.row(i) = weight.value.row(static_cast<Eigen::Index>(t));
    }
  }
  /// dW[idx[i]] += dy[i] (the indices were validated by forward()).
  template <class I>
  void backward(const I* idx, Eigen::Index n, const CRef<S>& dy) {
    for (Eigen::Index i = 0; i < n; ++i)
      weight.grad.row(static_cast<Eigen::Index>(idx[i])) += dy.row(i);
  }

  template <class F>
  void for_each_param(F&& f) { f(weight); }
  template <class F>
  void for_each_param(F&& f) const { f(weight); }
};

// ---- LayerNorm ----------------------------------------------------------------------------

// The AVX-512 float path of LayerNorm (below), for widths 16 V, V = 1..8.
#if defined(__AVX512F__)
namespace detail {

/// The lanes whose dropout mask byte (mask[0..16), 0/1; only the first `left` read when fewer
/// remain) is set: a kept entry is then v * scale by one zero-masked multiply, a dropped one 0
/// (AVX-512F instructions only). Used by Dropout::forward and the TRM's fused epilogues.
inline __mmask16 mask_lanes16(const std::uint8_t* mask, std::ptrdiff_t left) noexcept {
  alignas(16) std::uint8_t tail[16] = {};
  if (left < 16) {
    for (std::ptrdiff_t i = 0; i < left; ++i) tail[i] = mask[i];
    mask = tail;
  }
  const __m512i m = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mask)));
  return _mm512_test_epi32_mask(m, m);
}

/// {Σa, Σb, Σc, Σd} of four 16-lane vectors, each summed in a fixed order. (Zero-masked
/// extracts for both halves: GCC 12 warns inside the unmasked extract, and its 512-to-256 cast
/// is that extract.)
inline __m128 sum4x16(__m512 a, __m512 b, __m512 c, __m512 d) noexcept {
  const auto halves = [](__m512 v) {
    const __m512d w = _mm512_castps_pd(v);
    return _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(__mmask8(0xF), w, 0)),
                         _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(__mmask8(0xF), w, 1)));
  };
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(halves(a), halves(b)), _mm256_hadd_ps(halves(c), halves(d)));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/// Mean and 1 / sqrt(var + eps) of Q <= 4 rows of 16 V floats (row stride ld), as 4 lanes.
template <int V, int Q>
inline void layer_norm_stats(const float* x, Eigen::Index ld, float eps, float* mean, float* rstd) noexcept {
  const __m128 d = _mm_set1_ps(static_cast<float>(16 * V));
  __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int q = 0; q < Q; ++q)
    for (int i = 0; i < V; ++i) s[q] = _mm512_add_ps(s[q], _mm512_loadu_ps(x + q * ld + 16 * i));
  _mm_storeu_ps(mean, _mm_div_ps(sum4x16(s[0], s[1], s[2], s[3]), d));
  for (int q = 0; q < Q; ++q) {
    const __m512 m = _mm512_set1_ps(mean[q]);
    s[q] = _mm512_setzero_ps();
    for (int i = 0; i < V; ++i) {
      const __m512 c = _mm512_sub_ps(_mm512_loadu_ps(x + q * ld + 16 * i), m);
      s[q] = _mm512_fmadd_ps(c, c, s[q]);
    }
  }
  const __m128 var = _mm_div_ps(sum4x16(s[0], s[1], s[2], s[3]), d);
  _mm_storeu_ps(rstd, _mm_div_ps(_mm_set1_ps(1.0f), _mm_sqrt_ps(_mm_add_ps(var, _mm_set1_ps(eps)))));
}

/// Row stats (mean, rstd) of rows [r, r + Q): from st_in (kept by an earlier forward of the same
/// rows) if given, else computed; and stored into st_out if given. Two floats per row.
template <int V, int Q>
inline void layer_norm_block_stats(const float* x, Eigen::Index ldx, float eps, Eigen::Index r, const float* st_in,
                                   float* st_out, float* mean, float* rstd) noexcept {
  if (st_in) {
    for (int q = 0; q < Q; ++q) {
      mean[q] = st_in[2 * (r + q)];
      rstd[q] = st_in[2 * (r + q) + 1];
    }
    return;
  }
  layer_norm_stats<V, Q>(x + r * ldx, ldx, eps, mean, rstd);
  if (st_out)
    for (int q = 0; q < Q; ++q) {
      st_out[2 * (r + q)] = mean[q];
      st_out[2 * (r + q) + 1] = rstd[q];
    }
}

/// LayerNorm forward over rows of 16 V floats, four rows at a time (their horizontal sums
/// share one reduction, so rows do not wait on each other). y may alias x row for row.
template <int V>
inline void layer_norm_forward_avx512(const float* x, Eigen::Index ldx, float* y, Eigen::Index ldy, const float* g,
                                      const float* b, Eigen::Index rows, float eps, const float* st_in,
                                      float* st_out) noexcept {
  const auto block = [&](auto q_count, Eigen::Index r) {
    constexpr int Q = decltype(q_count)::value;
    alignas(16) float mean[4], rstd[4];
    layer_norm_block_stats<V, Q>(x, ldx, eps, r, st_in, st_out, mean, rstd);
    for (int q = 0; q < Q; ++q) {
      const __m512 m = _mm512_set1_ps(mean[q]), rs = _mm512_set1_ps(rstd[q]);
      const float* xr = x + (r + q) * ldx;
      float* yr = y + (r + q) * ldy;
      for (int i = 0; i < V; ++i) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + 16 * i), m), rs);
        const __m512 gi = _mm512_loadu_ps(g + 16 * i);
        _mm512_storeu_ps(yr + 16 * i, b ? _mm512_fmadd_ps(xh, gi, _mm512_loadu_ps(b + 16 * i)) : _mm512_mul_ps(xh, gi));
      }
    }
  };
  Eigen::Index r = 0;
  for (; r + 4 <= rows; r += 4) block(std::integral_constant<int, 4>{}, r);
  for (; r < rows; ++r) block(std::integral_constant<int, 1>{}, r);
}

/// LayerNorm backward (see LayerNorm::backward) over rows of 16 V floats, four at a time;
/// dg and db (db may be null) are summed in registers over all rows and added once.
template <int V>
inline void layer_norm_backward_avx512(const float* x, Eigen::Index ldx, const float* dy, Eigen::Index lddy,
                                       float* dx, Eigen::Index lddx, const float* g, float* dg, float* db,
                                       Eigen::Index rows, float eps, const float* st_in) noexcept {
  __m512 gsum[V], bsum[V];
  for (int i = 0; i < V; ++i) gsum[i] = bsum[i] = _mm512_setzero_ps();
  const __m128 d = _mm_set1_ps(static_cast<float>(16 * V));
  const auto block = [&](auto q_count, Eigen::Index r) {
    constexpr int Q = decltype(q_count)::value;
    alignas(16) float mean[4], rstd[4], m1[4], m2[4];
    layer_norm_block_stats<V, Q>(x, ldx, eps, r, st_in, nullptr, mean, rstd);
    __m512 s1[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    __m512 s2[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int q = 0; q < Q; ++q) {
      const __m512 m = _mm512_set1_ps(mean[q]), rs = _mm512_set1_ps(rstd[q]);
      const float* xr = x + (r + q) * ldx;
      const float* dyr = dy + (r + q) * lddy;
      for (int i = 0; i < V; ++i) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + 16 * i), m), rs);
        const __m512 dyi = _mm512_loadu_ps(dyr + 16 * i);
        const __m512 dxh = _mm512_mul_ps(dyi, _mm512_loadu_ps(g + 16 * i));
        s1[q] = _mm512_add_ps(s1[q], dxh);
        s2[q] = _mm512_fmadd_ps(dxh, xh, s2[q]);
        gsum[i] = _mm512_fmadd_ps(dyi, xh, gsum[i]);
        bsum[i] = _mm512_add_ps(bsum[i], dyi);
      }
    }
    _mm_storeu_ps(m1, _mm_div_ps(sum4x16(s1[0], s1[1], s1[2], s1[3]), d));
    _mm_storeu_ps(m2, _mm_div_ps(sum4x16(s2[0], s2[1], s2[2], s2[3]), d));
    for (int q = 0; q < Q; ++q) {
      const __m512 m = _mm512_set1_ps(mean[q]), rs = _mm512_set1_ps(rstd[q]);
      const __m512 a = _mm512_set1_ps(m1[q]), bq = _mm512_set1_ps(m2[q]);
      const float* xr = x + (r + q) * ldx;
      const float* dyr = dy + (r + q) * lddy;
      float* dxr = dx + (r + q) * lddx;
      for (int i = 0; i < V; ++i) {
        // dx += rstd (dy g - m1 - xh m2), xh = (x - mean) rstd
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + 16 * i), m), rs);
        const __m512 dxh = _mm512_mul_ps(_mm512_loadu_ps(dyr + 16 * i), _mm512_loadu_ps(g + 16 * i));
        const __m512 t = _mm512_sub_ps(_mm512_sub_ps(dxh, a), _mm512_mul_ps(xh, bq));
        _mm512_storeu_ps(dxr + 16 * i, _mm512_fmadd_ps(rs, t, _mm512_loadu_ps(dxr + 16 * i)));
      }
    }
  };
  Eigen::Index r = 0;
  for (; r + 4 <= rows; r += 4) block(std::integral_constant<int, 4>{}, r);
  for (; r < rows; ++r) block(std::integral_constant<int, 1>{}, r);
  for (int i = 0; i < V; ++i) {
    _mm512_storeu_ps(dg + 16 * i, _mm512_add_ps(_mm512_loadu_ps(dg + 16 * i), gsum[i]));
    if (db) _mm512_storeu_ps(db + 16 * i, _mm512_add_ps(_mm512_loadu_ps(db + 16 * i), bsum[i]));
  }
}

/// Calls f(std::integral_constant<int, V>) for a width of 16 V floats, V in 1..8; false for
/// any other width (the caller then takes the Eigen path).
template <class F>
inline bool with_width16(Eigen::Index d, F&& f) {
  switch (d) {
    case 16: f(std::integral_constant<int, 1>{}); return true;
    case 32: f(std::integral_constant<int, 2>{}); return true;
    case 48: f(std::integral_constant<int, 3>{}); return true;
    case 64: f(std::integral_constant<int, 4>{}); return true;
    case 80: f(std::integral_constant<int, 5>{}); return true;
    case 96: f(std::integral_constant<int, 6>{}); return true;
    case 112: f(std::integral_constant<int, 7>{}); return true;
    case 128: f(std::integral_constant<int, 8>{}); return true;
    default: return false;
  }
}

}  // namespace detail
#endif

/// y = (x - mean) / sqrt(var + eps) * g + b over each row, biased variance, eps 1e-5
/// (reference: torch.nn.LayerNorm(dim, bias=...)).
template <class S>
struct LayerNorm {
  using RowArray = Eigen::Array<S, 1, Eigen::Dynamic>;
  using RowMap = Eigen::Map<const RowArray>;
  Param<S> gain;  // (dim), stored (1, dim); PyTorch "weight"
  Param<S> bias;  // (dim), stored (1, dim); empty without bias
  double eps = 1e-5;

  LayerNorm() = default;
  LayerNorm(const std::string& name, int dim, bool with_bias = true)
      : gain(name + ".weight", {dim}, 1, dim, false) {
    NANONAV_ASSERT(dim > 0);
    gain.value.setOnes();
    if (with_bias) bias = Param<S>(name + ".bias", {dim}, 1, dim, false);
  }
  int dim() const noexcept { return static_cast<int>(gain.value.cols()); }
  bool has_bias() const noexcept { return bias.value.size() > 0; }

  /// PyTorch default: gain 1, bias 0 (draws nothing from rng).
  void init(Rng&) {
    gain.value.setOnes();
    bias.value.setZero();
  }

  /// With stats_out (2 per row: mean, then rstd), each row's statistics are also stored, for
  /// forward_from_stats and backward over the same x later: the same bits, without the
  /// reductions.
  void forward(const CRef<S>& x, MRef<S> y, S* stats_out = nullptr) const { run_forward(x, y, nullptr, stats_out); }

  /// forward with the statistics stored by forward(x, y, stats_out) for this same x.
  void forward_from_stats(const CRef<S>& x, const S* stats_in, MRef<S> y) const {
    NANONAV_ASSERT(stats_in != nullptr);
    run_forward(x, y, stats_in, nullptr);
  }

  /// With xh = (x - mean) rstd and dxh = dy * g:
  /// dx += rstd (dxh - mean(dxh) - xh mean(dxh xh)); dg += Σ dy xh; db += Σ dy.
  /// Mean and rstd are recomputed from x, or read from stats_in as forward stored them.
  void backward(const CRef<S>& x, const CRef<S>& dy, MRef<S> dx, const S* stats_in = nullptr) {
    NANONAV_ASSERT(dy.rows() == x.rows() && dx.rows() == x.rows());
    const Eigen::Index d = x.cols();
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float>) {
      float* db = has_bias() ? bias.grad.data() : nullptr;
      if (detail::with_width16(d, [&](auto v) {
            detail::layer_norm_backward_avx512<decltype(v)::value>(x.data(), x.outerStride(), dy.data(), dy.outerStride(),
                                                                   dx.data(), dx.outerStride(), gain.value.data(),
                                                                   gain.grad.data(), db, x.rows(), static_cast<float>(eps),
                                                                   stats_in);
          }))
        return;
    }
#endif
    const RowMap g(gain.value.data(), d);
    Eigen::Map<RowArray> dg(gain.grad.data(), d);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const RowMap xr(x.row(r).data(), d), dyr(dy.row(r).data(), d);
      Eigen::Map<RowArray> dxr(dx.row(r).data(), d);
      S mean, rstd;
      row_stats(xr.data(), r, stats_in, nullptr, mean, rstd);
      const S m1 = (dyr * g).sum() / static_cast<S>(d);
      const S m2 = (dyr * g * (xr - mean)).sum() * rstd / static_cast<S>(d);
      dg += dyr * (xr - mean) * rstd;
      if (has_bias()) Eigen::Map<RowArray>(bias.grad.data(), d) += dyr;
      dxr += rstd * (dyr * g - m1 - (xr - mean) * (rstd * m2));
    }
  }

  template <class F>
  void for_each_param(F&& f) {
    f(gain);
    if (has_bias()) f(bias);
  }
  template <class F>
  void for_each_param(F&& f) const {
    f(gain);
    if (has_bias()) f(bias);
  }

 private:
  void run_forward(const CRef<S>& x, MRef<S> y, const S* stats_in, S* stats_out) const {
    NANONAV_ASSERT(x.cols() == dim() && y.cols() == dim() && y.rows() == x.rows());
    const Eigen::Index d = x.cols();
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float>) {
      const float* b = has_bias() ? bias.value.data() : nullptr;
      if (detail::with_width16(d, [&](auto v) {
            detail::layer_norm_forward_avx512<decltype(v)::value>(x.data(), x.outerStride(), y.data(), y.outerStride(),
                                                                  gain.value.data(), b, x.rows(), static_cast<float>(eps),
                                                                  stats_in, stats_out);
          }))
        return;
    }
#endif
    const RowMap g(gain.value.data(), d);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const RowMap xr(x.row(r).data(), d);
      S mean, rstd;
      row_stats(xr.data(), r, stats_in, stats_out, mean, rstd);
      // The expression reads x[r] before writing y[r] element by element: y may alias x.
      if (has_bias())
        y.row(r).array() = (xr - mean) * rstd * g + RowMap(bias.value.data(), d);
      else
        y.row(r).array() = (xr - mean) * rstd * g;
    }
  }

  /// Row r's mean and rstd: from stats_in if given, else computed (and stored into stats_out).
  void row_stats(const S* xr, Eigen::Index r, const S* stats_in, S* stats_out, S& mean, S& rstd) const {
    if (stats_in) {
      mean = stats_in[2 * r];
      rstd = stats_in[2 * r + 1];
      return;
    }
    const Eigen::Index d = gain.value.cols();
    const RowMap v(xr, d);
    mean = v.sum() / static_cast<S>(d);
    const S var = (v - mean).square().sum() / static_cast<S>(d);
    rstd = S(1) / std::sqrt(var + static_cast<S>(eps));
    if (stats_out) {
      stats_out[2 * r] = mean;
      stats_out[2 * r + 1] = rstd;
    }
  }
};

// ---- GELU ---------------------------------------------------------------------------------

/// Exact GELU, x Φ(x) = 0.5 x (1 + erf(x / sqrt 2)) (reference: torch.nn.GELU()).
struct Gelu {
  template <class S>
  static S value(S x) noexcept {
    return S(0.5) * x * (S(1) + std::erf(x * S(0.70710678118654752440)));
  }
  /// d/dx [x Φ(x)] = Φ(x) + x φ(x).
  template <class S>
  static S derivative(S x) noexcept {
    const S cdf = S(0.5) * (S(1) + std::erf(x * S(0.70710678118654752440)));
    const S pdf = S(0.39894228040143267794) * std::exp(S(-0.5) * x * x);
    return cdf + x * pdf;
  }
  template <class S>
  static void forward(const CRef<S>& x, MRef<S> y) {
    NANONAV_ASSERT(x.rows() == y.rows() && x.cols() == y.cols());
    for (Eigen::Index r = 0; r < x.rows(); ++r)
      for (Eigen::Index c = 0; c < x.cols(); ++c) y(r, c) = value(x(r, c));
  }
  /// dx += dy * gelu'(x).
  template <class S>
  static void backward(const CRef<S>& x, const CRef<S>& dy, MRef<S> dx) {
    for (Eigen::Index r = 0; r < x.rows(); ++r)
      for (Eigen::Index c = 0; c < x.cols(); ++c) dx(r, c) += dy(r, c) * derivative(x(r, c));
  }
};

// ---- Dropout ------------------------------------------------------------------------------

/// Inverted dropout (reference: torch.nn.Dropout): in training each entry is kept with
/// probability 1 - p and scaled by 1 / (1 - p); in evaluation it is the identity. The mask is
/// drawn from a caller-given Rng, so a seed gives the same mask on every platform and thread
/// count. Each mask byte is 1 (kept) or 0 (dropped).
struct Dropout {
  double p = 0.0;

  Dropout() = default;
  explicit Dropout(double prob) : p(prob) { NANONAV_ASSERT(prob >= 0.0 && prob < 1.0); }

  bool active(bool train) const noexcept { return train && p > 0.0; }
  /// The scale of kept entries, 1 / (1 - p).
  double scale() const noexcept { return 1.0 / (1.0 - p); }

  /// Fills mask[0..n): entry dropped when a 16-bit uniform draw is below round(p * 2^16)
  /// (four draws per 64-bit RNG output: entry 4i + q from bits [16q, 16q + 16) of output i;
  /// rng advances by ceil(n / 4) outputs). So p is resolved to 1/65536: p = 0.1 drops with
  /// probability 6554/65536 = 0.100006. With AVX-512 (F, DQ, BW, VL) eight outputs (32
  /// entries) are made at once in vector lanes (SplitMix64 outputs are independent given the
  /// state): the same stream, computed in lanes.
  void sample_mask(Rng& rng, std::uint8_t* mask, std::size_t n) const { sample_mask_rows(rng, mask, 1, n, n); }

  /// The same as sample_mask(rng, mask + r * ld, cols) for r = 0, 1, ..., rows - 1 in turn (one
  /// stream, each row starting at a new RNG output), in one call: the TRM draws its masks in
  /// rows of dim or dim / 2 entries, where a call per row cost more than the draws.
  void sample_mask_rows(Rng& rng, std::uint8_t* mask, std::size_t rows, std::size_t cols, std::size_t ld) const {
    const auto threshold = static_cast<std::uint64_t>(std::llround(p * 65536.0));
    const std::size_t draws = (cols + 3) / 4;  // per row
    std::uint64_t s = rng.state();
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    const auto ll = [](std::uint64_t v) { return static_cast<long long>(v); };
    const __m512i thr = _mm512_set1_epi16(static_cast<short>(static_cast<std::uint16_t>(threshold)));
    const __m512i m1 = _mm512_set1_epi64(ll(0xBF58476D1CE4E5B9ull)), m2 = _mm512_set1_epi64(ll(0x94D049BB133111EBull));
    const __m512i step = _mm512_set1_epi64(ll(8 * Rng::kGamma));
    const __m512i first = _mm512_mullo_epi64(_mm512_set_epi64(8, 7, 6, 5, 4, 3, 2, 1), _mm512_set1_epi64(ll(Rng::kGamma)));
#endif
    for (std::size_t r = 0; r < rows; ++r, s += draws * Rng::kGamma) {
      std::uint8_t* row = mask + r * ld;
      std::size_t i = 0;  // entries of this row done
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
      if (threshold <= 0xFFFFull) {
        __m512i z = _mm512_add_epi64(_mm512_set1_epi64(ll(s)), first);
        for (; i + 32 <= cols; i += 32) {  // 8 outputs -> 32 mask bytes (16-bit lanes in memory order)
          __m512i u = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), m1);
          u = _mm512_mullo_epi64(_mm512_xor_si512(u, _mm512_srli_epi64(u, 27)), m2);
          u = _mm512_xor_si512(u, _mm512_srli_epi64(u, 31));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + i), _mm256_maskz_set1_epi8(_mm512_cmpge_epu16_mask(u, thr), 1));
          z = _mm512_add_epi64(z, step);
        }
      }
#endif
      for (; i < cols; i += 4) {  // output i / 4 + 1 of the row's stream
        const std::uint64_t u = Rng::mix(s + (i / 4 + 1) * Rng::kGamma);
        for (std::size_t q = 0; q < 4 && i + q < cols; ++q) row[i + q] = ((u >> (16 * q)) & 0xFFFFull) >= threshold;
      }
    }
    rng.set_state(s);
  }

  /// y = x * mask * scale (train) or y = x (eval). mask holds x.size() bytes in row-major order.
  template <class S>
  void forward(const CRef<S>& x, const std::uint8_t* mask, MRef<S> y, bool train) const {
    NANONAV_ASSERT(x.rows() == y.rows() && x.cols() == y.cols());
    if (!active(train)) {
      y = x;
      return;
    }
    const S sc = static_cast<S>(scale());
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const std::uint8_t* m = mask + r * x.cols();
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<S, float>) {  // 16 entries at a time, the same values
        const float* xr = x.data() + r * x.outerStride();
        float* yr = y.data() + r * y.outerStride();
        const __m512 vs = _mm512_set1_ps(sc);
        for (Eigen::Index c = 0; c < x.cols(); c += 16) {
          const Eigen::Index left = x.cols() - c;
          const __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
          const __m512 v = _mm512_maskz_mul_ps(detail::mask_lanes16(m + c, left), _mm512_maskz_loadu_ps(k, xr + c), vs);
          _mm512_mask_storeu_ps(yr + c, k, v);
        }
        continue;
      }
#endif
      for (Eigen::Index c = 0; c < x.cols(); ++c) y(r, c) = m[c] ? x(r, c) * sc : S(0);
    }
  }
  /// dx += dy * mask * scale (train) or dx += dy (eval).
  template <class S>
  void backward(const std::uint8_t* mask, const CRef<S>& dy, MRef<S> dx, bool train) const {
    if (!active(train)) {
      dx += dy;
      return;
    }
    const S sc = static_cast<S>(scale());
    for (Eigen::Index r = 0; r < dy.rows(); ++r) {
      const std::uint8_t* m = mask + r * dy.cols();
      for (Eigen::Index c = 0; c < dy.cols(); ++c)
        if (m[c]) dx(r, c) += dy(r, c) * sc;
    }
  }
};

// ---- Residual add and mean-pool -------------------------------------------------------------

/// y = x + f (a residual connection). Backward: dx += dy and df += dy.
template <class S>
inline void residual_forward(const CRef<S>& x, const CRef<S>& f, MRef<S> y) {
  y = x + f;
}
template <class S>
inline void residual_backward(const CRef<S>& dy, MRef<S> dx, MRef<S> df) {
  dx += dy;
  df += dy;
}

/// How the rows of a (tokens * batch, dim) activation block are ordered.
enum class TokenOrder : std::uint8_t {
  SampleMajor,  ///< row b * tokens + t (PyTorch's (B, T, dim))
  TokenMajor,   ///< row t * batch + b (the TRM's layout: a (T, B * dim) view mixes tokens)
};

/// y[b] = mean over t of x[row(b, t)]: x (batch * tokens, dim) -> y (batch, dim).
template <class S>
inline void mean_pool_forward(const CRef<S>& x, int batch, int tokens, TokenOrder order,
                              MRef<S> y) {
  NANONAV_ASSERT(x.rows() == static_cast<Eigen::Index>(batch) * tokens && y.rows() == batch &&
                 y.cols() == x.cols());
  y.setZero();
  for (int t = 0; t < tokens; ++t)
    for (int b = 0; b < batch; ++b)
      y.row(b) += x.row(order == TokenOrder::TokenMajor ? t * batch + b : b * tokens + t);
  y *= S(1) / static_cast<S>(tokens);
}
/// dx[row(b, t)] += dy[b] / tokens.
template <class S>
inline void mean_pool_backward(const CRef<S>& dy, int batch, int tokens, TokenOrder order,
                               MRef<S> dx) {
  const S inv = S(1) / static_cast<S>(tokens);
  for (int t = 0; t < tokens; ++t)
    for (int b = 0; b < batch; ++b)
      dx.row(order == TokenOrder::TokenMajor ? t * batch + b : b * tokens + t) += dy.row(b) * inv;
}

}  // namespace nanonav::nn
