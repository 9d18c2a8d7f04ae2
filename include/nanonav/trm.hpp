#pragma once
/// The navigation TRM (Tiny Recursive Model, Jolicoeur-Martineau 2025, arXiv:2510.04871) in the
/// form of the NanoNav seed: an MLP-Mixer network (lucidrains' MLPMixer1D) applied `recursion`
/// times with the same weights, mean-pooled, and a small classifier head over the 5 actions.
/// docs/model.md gives every tensor's name, shape and PyTorch counterpart.
///
///   tokens (B, T), T = N*N + 4  ->  Embedding(3 + N, dim)  ->  x (B, T, dim)
///   recursion times:  x = network(x), network = depth mixer blocks, then LayerNorm (no bias);
///     with input_injection (not in the seed), applications after the first read x + e, where
///     e is the embedding: x = network(x + e)
///     block:  x += Dropout(W2 Dropout(GELU(W1 LN(x) + b1)) + b2)   mixing tokens, per feature
///             x += Dropout(Dropout(GELU(LN(x) Wc1ᵀ + bc1)) Wc2ᵀ + bc2)   mixing features
///   mean over tokens -> LN (bias) -> Dropout -> Linear(dim, dim) -> GELU -> Dropout
///                    -> Linear(dim, 5)
///
/// Layout (the speed trick): a micro-batch of C samples is one (T*C, dim) block whose rows are
/// token-major (row t*C + b). Row-wise work (norms, feature mixing) sees rows; the same memory
/// viewed as (T, C*dim) makes token mixing one (4dim, T) x (T, C*dim) GEMM, with no transpose
/// and no per-sample product.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "detail/assert.hpp"
#include "detail/rng.hpp"
#include "encoding.hpp"
#include "errors.hpp"
#include "grid.hpp"
#include "nn/layers.hpp"
#include "nn/gemm.hpp"
#include "nn/loss.hpp"
#include "nn/tensor.hpp"

namespace nanonav {

/// The model's shape and regularisation.
struct TrmConfig {
  int grid_size = 8;     ///< N: maps are N x N
  int dim = 64;          ///< feature width
  int depth = 2;         ///< mixer blocks per network application
  int recursion = 8;     ///< network applications (same weights)
  double dropout = 0.1;  ///< probability, every dropout site
  int grad_last_k = 0;   ///< backpropagate through the last k applications only; 0 = all
  Encoding encoding = Encoding::Seed;  ///< the tokens it reads (encoding.hpp): sets the vocabulary
  /// Applications 2..R read x + embedding instead of x (as the official TRM re-injects its
  /// input each recursion; the seed does not). No extra parameters.
  bool input_injection = false;
  /// Weight of an auxiliary training loss (not in the seed; 0 = off): a per-cell head
  /// Linear(dim, 1) on the network output regresses every reachable cell's BFS distance to
  /// the goal, divided by N (squared error, averaged over the sample's reachable cells). Only
  /// training reads the head; the action logits do not depend on it.
  double aux_distance = 0.0;

  bool has_aux() const noexcept { return aux_distance > 0.0; }
  /// T = N*N + 4 (the cells, then start row, start col, goal row, goal col).
  int tokens() const noexcept { return grid_size * grid_size + 4; }
  /// 3 + N (0 unused, 1 free, 2 blocked, 3 + coordinate), plus 11 cell markers with
  /// Encoding::Marked.
  int vocab() const noexcept { return vocab_size(grid_size, encoding); }
  /// The number of applications that build the backward graph.
  int grad_applications() const noexcept {
    return grad_last_k <= 0 ? recursion : std::min(grad_last_k, recursion);
  }
  /// Throws InvalidArgument for a value outside its domain.
  void validate() const {
    const auto bad = [](const std::string& what) {
      throw InvalidArgument("TrmConfig: " + what);
    };
    if (grid_size < 1 || grid_size > 256) bad("grid_size must be in [1, 256], got " + std::to_string(grid_size));
    if (dim < 2 || dim > 4096) bad("dim must be in [2, 4096], got " + std::to_string(dim));
    if (depth < 1 || depth > 64) bad("depth must be in [1, 64], got " + std::to_string(depth));
    if (recursion < 1 || recursion > 1024)
      bad("recursion must be in [1, 1024], got " + std::to_string(recursion));
    if (!(dropout >= 0.0 && dropout < 1.0)) bad("dropout must be in [0, 1), got " + std::to_string(dropout));
    if (grad_last_k < 0 || grad_last_k > recursion)
      bad("grad_last_k must be in [0, recursion], got " + std::to_string(grad_last_k));
    if (!(aux_distance >= 0.0 && aux_distance <= 1000.0))
      bad("aux_distance must be in [0, 1000], got " + std::to_string(aux_distance));
  }
};

/// One mixer block's parameters.
template <class S>
struct TrmBlock {
  nn::LayerNorm<S> tok_norm;   // (dim), no bias
  nn::Linear<S> tok_w1;        // (4dim, T) + (4dim): mixes tokens (Conv1d kernel 1)
  nn::Linear<S> tok_w2;        // (T, 4dim) + (T)
  nn::LayerNorm<S> chan_norm;  // (dim), no bias
  nn::Linear<S> chan_w1;       // (dim/2, dim) + (dim/2): mixes features
  nn::Linear<S> chan_w2;       // (dim, dim/2) + (dim)

  TrmBlock(const std::string& p, int dim, int tokens)
      : tok_norm(p + ".tok_norm", dim, false),
        tok_w1(p + ".tok_ff.w1", tokens, 4 * dim, true, {4 * dim, tokens, 1}),
        tok_w2(p + ".tok_ff.w2", 4 * dim, tokens, true, {tokens, 4 * dim, 1}),
        chan_norm(p + ".chan_norm", dim, false),
        chan_w1(p + ".chan_ff.w1", dim, dim / 2),
        chan_w2(p + ".chan_ff.w2", dim / 2, dim) {}

  template <class F>
  void for_each_param(F&& f) {
    tok_norm.for_each_param(f);
    tok_w1.for_each_param(f);
    tok_w2.for_each_param(f);
    chan_norm.for_each_param(f);
    chan_w1.for_each_param(f);
    chan_w2.for_each_param(f);
  }
  template <class F>
  void for_each_param(F&& f) const {
    tok_norm.for_each_param(f);
    tok_w1.for_each_param(f);
    tok_w2.for_each_param(f);
    chan_norm.for_each_param(f);
    chan_w1.for_each_param(f);
    chan_w2.for_each_param(f);
  }
};

/// The model: config and parameters. Copyable (a copy is an independent model).
template <class S>
class Trm {
  static_assert(std::is_floating_point_v<S>, "Trm needs a floating-point scalar");

 public:
  /// Builds a zero-initialised model; call init(). Throws InvalidArgument for a bad config.
  explicit Trm(const TrmConfig& cfg) : cfg_((cfg.validate(), cfg)) {
    const int d = cfg_.dim, t = cfg_.tokens();
    embed = nn::Embedding<S>("embed", cfg_.vocab(), d);
    blocks.reserve(static_cast<std::size_t>(cfg_.depth));
    for (int l = 0; l < cfg_.depth; ++l) blocks.emplace_back("blocks." + std::to_string(l), d, t);
    norm = nn::LayerNorm<S>("norm", d, false);
    head_norm = nn::LayerNorm<S>("head.norm", d, true);
    head_w1 = nn::Linear<S>("head.w1", d, d);
    head_w2 = nn::Linear<S>("head.w2", d, kNumActions);
    if (cfg_.has_aux()) aux_head = nn::Linear<S>("aux.distance", d, 1);
  }

  /// PyTorch-default initialisation (Embedding N(0,1); Linear U(+-1/sqrt(fan_in)); norms 1, 0)
  /// drawn from Rng(seed) in for_each_param order.
  void init(std::uint64_t seed) {
    Rng rng(seed);
    embed.init(rng);
    for (auto& b : blocks) {
      b.tok_norm.init(rng);
      b.tok_w1.init(rng);
      b.tok_w2.init(rng);
      b.chan_norm.init(rng);
      b.chan_w1.init(rng);
      b.chan_w2.init(rng);
    }
    norm.init(rng);
    head_norm.init(rng);
    head_w1.init(rng);
    head_w2.init(rng);
    if (cfg_.has_aux()) aux_head.init(rng);  // last: the other parameters do not depend on it
    zero_grad();
  }

  /// Visits every parameter in a fixed order (embed, blocks 0.., norm, head, then the aux head
  /// when there is one): the slot order of the optimiser state and of checkpoints.
  template <class F>
  void for_each_param(F&& f) {
    embed.for_each_param(f);
    for (auto& b : blocks) b.for_each_param(f);
    norm.for_each_param(f);
    head_norm.for_each_param(f);
    head_w1.for_each_param(f);
    head_w2.for_each_param(f);
    if (cfg_.has_aux()) aux_head.for_each_param(f);
  }
  template <class F>
  void for_each_param(F&& f) const {
    embed.for_each_param(f);
    for (const auto& b : blocks) b.for_each_param(f);
    norm.for_each_param(f);
    head_norm.for_each_param(f);
    head_w1.for_each_param(f);
    head_w2.for_each_param(f);
    if (cfg_.has_aux()) aux_head.for_each_param(f);
  }

  /// The number of trainable scalars (84 301 for dim 64, depth 2 on 8x8).
  std::size_t num_params() const {
    std::size_t n = 0;
    for_each_param([&](const nn::Param<S>& p) { n += static_cast<std::size_t>(p.size()); });
    return n;
  }
  const TrmConfig& config() const noexcept { return cfg_; }
  void zero_grad() {
    for_each_param([](nn::Param<S>& p) { p.grad.setZero(); });
  }
  /// Sets the dropout probability (e.g. for a fine-tuning phase); the shape stays.
  void set_dropout(double p) {
    TrmConfig c = cfg_;
    c.dropout = p;
    c.validate();
    cfg_ = c;
  }
  /// Sets grad_last_k; the shape stays.
  void set_grad_last_k(int k) {
    TrmConfig c = cfg_;
    c.grad_last_k = k;
    c.validate();
    cfg_ = c;
  }

  nn::Embedding<S> embed;
  std::vector<TrmBlock<S>> blocks;
  nn::LayerNorm<S> norm;  // the network's final norm, no bias
  nn::LayerNorm<S> head_norm;
  nn::Linear<S> head_w1, head_w2;
  nn::Linear<S> aux_head;  // (1, dim) + (1) when config().has_aux(); empty otherwise

 private:
  TrmConfig cfg_;
};

namespace detail {

/// What one mixer block keeps for backward (also used as scratch when nothing is kept).
template <class S>
struct TrmBlockCache {
  nn::Mat<S> a1;    // (4dim, C*dim) Dropout'·GELU' of u = W1 n1 + b1 (block_forward with keep; sized only then)
  nn::Mat<S> g1;    // (4dim, C*dim) u, then Dropout(GELU(u))
  nn::Mat<S> xmid;  // (T*C, dim)   x after the token-mixing residual
  nn::Mat<S> a2;    // (T*C, dim/2) n2 Wc1ᵀ + bc1, then Dropout'·GELU' of it (block_forward with keep)
  nn::Mat<S> g2;    // (T*C, dim/2) Dropout(GELU(a2))
  std::vector<std::uint8_t> m_o1, m_o2;  // dropout masks of the two residual sites
  std::vector<S> st1, st2;  // (T*C, 2) mean and rstd of each row of LN(x) and LN(xmid) (kept only)

  /// kept: for an application that backward visits (otherwise a1, st1 and st2 stay empty).
  void resize(int tokens, int dim, int chunk, bool masks, bool kept) {
    const Eigen::Index m = static_cast<Eigen::Index>(tokens) * chunk, cd = static_cast<Eigen::Index>(chunk) * dim;
    a1.resize(kept ? 4 * dim : 0, kept ? cd : 0);
    st1.resize(kept ? static_cast<std::size_t>(2 * m) : 0);
    st2.resize(st1.size());
    g1.resize(4 * dim, cd);
    xmid.resize(m, dim);
    a2.resize(m, dim / 2);
    g2.resize(m, dim / 2);
    if (masks) {
      m_o1.resize(static_cast<std::size_t>(xmid.size()));
      m_o2.resize(static_cast<std::size_t>(xmid.size()));
    }
  }
};

/// The dropout masks of a block's two hidden sites (after each GELU). Backward does not read
/// them (a1 and a2 keep GELU' with the mask folded in), so one pair serves every application.
struct TrmHiddenMasks {
  std::vector<std::uint8_t> h1;  // (4dim, C*dim)
  std::vector<std::uint8_t> h2;  // (T*C, dim/2)

  void resize(int tokens, int dim, int chunk) {
    h1.resize(static_cast<std::size_t>(4 * dim) * static_cast<std::size_t>(chunk) * static_cast<std::size_t>(dim));
    h2.resize(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(chunk) * static_cast<std::size_t>(dim / 2));
  }
};

/// One mixer block's weights packed for the GEMM kernel (nn::PackedOperand): forward (W1 and
/// W2 as A operands, Wc1ᵀ and Wc2ᵀ as B operands) and backward (W2ᵀ, W1ᵀ; Wc2, Wc1). Packed
/// once per micro-batch pass, or once per fixed-weights span of the workspace, and shared by
/// all R applications; empty on the Eigen path.
struct TrmPackedBlock {
  nn::PackedOperand w1, w2, c1t, c2t;  // forward
  nn::PackedOperand w2t, w1t, c2, c1;  // backward
};

template <class S>
inline void pack_block_weights(const TrmBlock<S>& blk, const TrmConfig& c, bool backward, TrmPackedBlock& pk) {
  const int T = c.tokens(), D = c.dim, H = 4 * D, Dh = D / 2;
  const S* w1 = blk.tok_w1.weight.value.data();  // (H, T)
  const S* w2 = blk.tok_w2.weight.value.data();  // (T, H)
  const S* c1 = blk.chan_w1.weight.value.data();  // (Dh, D)
  const S* c2 = blk.chan_w2.weight.value.data();  // (D, Dh)
  if (!backward) {
    nn::pack_a<S>(false, H, T, w1, T, pk.w1);
    nn::pack_a<S>(false, T, H, w2, H, pk.w2);
    nn::pack_b<S>(true, D, Dh, c1, D, pk.c1t);
    nn::pack_b<S>(true, Dh, D, c2, Dh, pk.c2t);
  } else {
    nn::pack_a<S>(true, H, T, w2, H, pk.w2t);
    nn::pack_a<S>(true, T, H, w1, T, pk.w1t);
    nn::pack_b<S>(false, D, Dh, c2, Dh, pk.c2);
    nn::pack_b<S>(false, Dh, D, c1, D, pk.c1);
  }
}

/// Where the dropout masks of one micro-batch come from: sample s (index in the whole batch),
/// application a, block l draw from Rng::stream(seed, (s * (R + 1) + a) * depth + l); the head
/// uses application index R. Masks thus do not depend on micro-batch size or thread count.
struct TrmDropout {
  bool active = false;
  double p = 0.0;
  std::uint64_t seed = 0;
  int first_sample = 0;

  Rng stream(const TrmConfig& c, int sample, int app, int block) const {
    const std::uint64_t id = (static_cast<std::uint64_t>(first_sample + sample) *
                                  static_cast<std::uint64_t>(c.recursion + 1) +
                              static_cast<std::uint64_t>(app)) *
                                 static_cast<std::uint64_t>(c.depth) +
                             static_cast<std::uint64_t>(block);
    return Rng::stream(seed, id);
  }
};

}  // namespace detail

/// Buffers for one micro-batch: activations, the backward caches of the applications that
/// build a graph, and gradient scratch. Sized on first use for a batch size; reusing it for the
/// same size allocates nothing.
template <class S>
class TrmWorkspace {
 public:
  TrmWorkspace() = default;

  /// Sizes the buffers for `chunk` samples and `cached` applications with caches.
  void ensure(const TrmConfig& c, int chunk, int cached, bool masks) {
    if (chunk == chunk_ && cached == cached_ && masks == masks_ && c.dim == dim_ &&
        c.tokens() == tokens_ && c.depth == depth_ && c.input_injection == inject_ &&
        c.has_aux() == aux_)
      return;
    inject_ = c.input_injection;
    aux_ = c.has_aux();
    chunk_ = chunk;
    cached_ = cached;
    masks_ = masks;
    dim_ = c.dim;
    tokens_ = c.tokens();
    depth_ = c.depth;
    const Eigen::Index m = static_cast<Eigen::Index>(tokens_) * chunk;
    idx.resize(static_cast<std::size_t>(m));
    const std::size_t nstates = static_cast<std::size_t>(cached) * static_cast<std::size_t>(depth_ + 1) + 1;
    states.resize(nstates);
    for (auto& s : states) s.resize(m, dim_);
    caches.resize(static_cast<std::size_t>(std::max(cached, 1)) * static_cast<std::size_t>(depth_));
    for (auto& cc : caches) cc.resize(tokens_, dim_, chunk, masks, cached > 0);
    if (masks) hidden_masks.resize(tokens_, dim_, chunk);
    if (c.input_injection) {
      emb.resize(m, dim_);
      demb.resize(m, dim_);
    }
    if (aux_) {
      aux_pred.resize(static_cast<Eigen::Index>(c.grid_size) * c.grid_size * chunk, 1);
      daux.resize(aux_pred.rows(), 1);
    }
    pooled.resize(chunk, dim_);
    h0.resize(chunk, dim_);
    h0d.resize(chunk, dim_);
    h1.resize(chunk, dim_);
    h1d.resize(chunk, dim_);
    logits.resize(chunk, kNumActions);
    mh0.resize(static_cast<std::size_t>(chunk) * dim_);
    mh1.resize(static_cast<std::size_t>(chunk) * dim_);
    dx.resize(m, dim_);
    dx2.resize(m, dim_);
    dz.resize(m, dim_);
    dn.resize(m, dim_);
    norm.resize(m, dim_);
    dg1.resize(4 * dim_, static_cast<Eigen::Index>(chunk) * dim_);
    dw1t.resize(tokens_, 4 * dim_);
    dw1t_sum.resize(static_cast<std::size_t>(depth_));
    for (auto& w : dw1t_sum) w.resize(tokens_, 4 * dim_);
    dg2.resize(m, dim_ / 2);
    dlogits.resize(chunk, kNumActions);
    dh.resize(chunk, dim_);
    dh2.resize(chunk, dim_);
  }
  int chunk() const noexcept { return chunk_; }

  // Buffers (read by the kernels in trm.hpp; not a stable API).
  std::vector<int> idx;                  // (T*C) token ids, token-major
  std::vector<nn::Mat<S>> states;        // (T*C, dim) each: app a block l input at a*(depth+1)+l
  std::vector<detail::TrmBlockCache<S>> caches;  // app a block l at a*depth+l
  detail::TrmHiddenMasks hidden_masks;           // the blocks' hidden-site masks, as drawn last
  nn::Mat<S> pooled, h0, h0d, h1, h1d, logits;   // head activations (C, .)
  std::vector<std::uint8_t> mh0, mh1;            // head dropout masks
  nn::Mat<S> dx, dx2, dz, dn, dg1, dg2, dlogits, dh, dh2;  // gradient scratch
  nn::Mat<S> dw1t;  // (T, 4dim) the transpose of one block's tok_w1 gradient
  std::vector<nn::Mat<S>> dw1t_sum;  // per block: the sum of those over a pass's applications
  nn::Mat<S> norm;  // (T*C, dim) a block's LN(x) or LN(xmid), forward and (recomputed) backward
  nn::Mat<S> emb, demb;  // (T*C, dim) with input injection: the embedding and its gradient
  nn::Mat<S> aux_pred, daux;  // (N*N*C, 1) with the aux head: its predictions and their gradient
  nn::GemmScratch gemm;       // packing buffers of the mixer blocks' products (nn/gemm.hpp)
  std::vector<std::uint8_t> padded_tokens;  // trm_logits: a short last micro-batch, padded

  /// The blocks' packed weights (`packed`) are reused from one micro-batch pass to the next
  /// while the weights stay the same. Whoever runs passes on this workspace and knows the
  /// weights fixed for a while (TrmTrainer for a step, trm_logits for a call) opens a span
  /// with begin_fixed_weights() and ends it with end_fixed_weights(); outside a span, every
  /// pass packs (the default).
  void begin_fixed_weights() noexcept { pack_span_ = ++pack_spans_; }  // a new id: nothing packed in it yet
  void end_fixed_weights() noexcept { pack_span_ = 0; }
  /// Whether a pass must pack the forward (or backward) weights; marks them packed.
  bool needs_packing(bool backward) noexcept {
    std::uint64_t& done = backward ? packed_bwd_ : packed_fwd_;
    if (pack_span_ != 0 && done == pack_span_) return false;
    done = pack_span_;
    return true;
  }
  std::vector<detail::TrmPackedBlock> packed;  // per block: its weights packed for the kernel

 private:
  int chunk_ = -1, cached_ = -1, dim_ = -1, tokens_ = -1, depth_ = -1;
  bool masks_ = false, inject_ = false, aux_ = false;
  std::uint64_t pack_spans_ = 0, pack_span_ = 0, packed_fwd_ = 0, packed_bwd_ = 0;
};

namespace detail {

/// A fixed-weights span (TrmWorkspace::begin_fixed_weights) on n workspaces for a scope, ended
/// also when an exception leaves it.
template <class S>
class FixedWeightsSpan {
 public:
  FixedWeightsSpan(TrmWorkspace<S>* ws, std::size_t n) noexcept : ws_(ws), n_(n) {
    for (std::size_t i = 0; i < n_; ++i) ws_[i].begin_fixed_weights();
  }
  ~FixedWeightsSpan() {
    for (std::size_t i = 0; i < n_; ++i) ws_[i].end_fixed_weights();
  }
  FixedWeightsSpan(const FixedWeightsSpan&) = delete;
  FixedWeightsSpan& operator=(const FixedWeightsSpan&) = delete;

 private:
  TrmWorkspace<S>* ws_;
  std::size_t n_;
};

template <class S>
using ArrMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <class S>
using CArrMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

/// Orders this thread's streaming stores (gelu_dropout_forward's d_out) before what follows.
template <class S>
inline void streaming_stores_done() noexcept {
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) _mm_sfence();
#endif
}

#if NANONAV_GEMM_AVX512
/// The lanes of a 16-wide step with `left` entries still to do.
inline __mmask16 lanes16(Eigen::Index left) noexcept {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}

using nn::detail::mask_lanes16;

/// Coefficients of the float AVX-512 GELU (below). On each interval [k/4, (k+1)/4), k = 0..31,
/// of a = |x|, Φ(-a) and GELU'(-a) = Φ(-a) - a φ(a) are polynomials of degree 4 in u = 4a - k,
/// interpolating them at the interval's 5 Chebyshev nodes (coefficient p of interval k at
/// [p][k]). Computed once, in double from std::erfc and std::exp, then read-only. The kernel
/// below, measured against the double form over [-10, 10]: |error| ≤ 1.1e-7 on Φ and ≤ 1.7e-7
/// on GELU' (docs/model.md; tests/test_trm.cpp checks it).
struct GeluTables {
  alignas(64) float phi[5][32];
  alignas(64) float dgelu[5][32];
};

inline GeluTables make_gelu_tables() {
  GeluTables t{};
  const double pi = 3.14159265358979323846;
  for (int k = 0; k < 32; ++k) {
    double u[5], A[5][6], B[5][6];
    for (int j = 0; j < 5; ++j) {
      u[j] = 0.5 - 0.5 * std::cos(pi * (2 * j + 1) / 10.0);
      const double av = (k + u[j]) / 4.0;
      const double low = 0.5 * std::erfc(av / std::sqrt(2.0));
      for (int q = 0; q < 5; ++q) A[j][q] = B[j][q] = std::pow(u[j], q);
      A[j][5] = low;
      B[j][5] = low - av * std::exp(-0.5 * av * av) / std::sqrt(2.0 * pi);
    }
    // Gaussian elimination with partial pivoting on each augmented 5x5 system
    const auto solve = [](double (&m)[5][6], float (&out)[5][32], int col) {
      for (int c = 0; c < 5; ++c) {
        int piv = c;
        for (int r = c + 1; r < 5; ++r)
          if (std::abs(m[r][c]) > std::abs(m[piv][c])) piv = r;
        for (int q = 0; q < 6; ++q) std::swap(m[c][q], m[piv][q]);
        for (int r = 0; r < 5; ++r) {
          if (r == c) continue;
          const double f = m[r][c] / m[c][c];
          for (int q = c; q < 6; ++q) m[r][q] -= f * m[c][q];
        }
      }
      for (int q = 0; q < 5; ++q) out[q][col] = static_cast<float>(m[q][5] / m[q][q]);
    };
    solve(A, t.phi, k);
    solve(B, t.dgelu, k);
  }
  return t;
}

inline const GeluTables& gelu_tables() {
  static const GeluTables tables = make_gelu_tables();  // thread-safe initialisation
  return tables;
}

/// The float AVX-512 form of gelu_dropout_forward, 16 entries per step. With a = |x| and the
/// interval index k = ⌊4a⌋ (a clamped below 8, where Φ(-a) < 1e-15), Φ(-a) is the degree-4
/// polynomial of interval k (GeluTables), its 5 coefficients picked for all 16 lanes at once by
/// two-register permutes (32 intervals), and Φ(x) = Φ(-a) for x < 0, 1 - Φ(-a) otherwise (the
/// negative tail without cancellation); GELU' the same way from its own table. Without dropout,
/// 21 vector operations per 16 entries for GELU alone and 32 with GELU' (the former formula,
/// Abramowitz & Stegun 7.1.26 with one exp, took 33 and 36).
inline void gelu_dropout_forward_avx512(float* a, float* g, Eigen::Index n, const std::uint8_t* mask,
                                        float scale, bool keep, float bias, const float* bias_vec, float* d_out) {
  // d_out: GELU' by streaming stores, 16 entries at a time where it is 64-byte aligned
  const bool stream = d_out && reinterpret_cast<std::uintptr_t>(d_out) % 64 == 0;
  float* dst = d_out ? d_out : a;
  const GeluTables& tb = gelu_tables();
  __m512 cdf_lo[5], cdf_hi[5];  // Φ's coefficients of intervals 0-15 and 16-31, kept in registers
  for (int c = 0; c < 5; ++c) {
    cdf_lo[c] = _mm512_load_ps(tb.phi[c]);
    cdf_hi[c] = _mm512_load_ps(tb.phi[c] + 16);
  }
  const __m512 vbias = _mm512_set1_ps(bias), vscale = _mm512_set1_ps(scale);
  const __m512 one = _mm512_set1_ps(1.0f), four = _mm512_set1_ps(4.0f);
  const __m512 tmax = _mm512_set1_ps(31.999998f);  // the largest float below 32
  for (Eigen::Index i = 0; i < n; i += 16) {
    const __mmask16 k = lanes16(n - i);
    __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + i), vbias);
    if (bias_vec) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(k, bias_vec + i));
    // t = 4|x| below 32 (NaN goes to 32 too: min returns its second operand), u = t - ⌊t⌋
    const __m512 t = _mm512_min_ps(_mm512_mul_ps(_mm512_abs_ps(x), four), tmax);
    const __m512i idx = _mm512_cvttps_epi32(t);
    const __m512 u = _mm512_sub_ps(t, _mm512_cvtepi32_ps(idx));
    __m512 low = _mm512_permutex2var_ps(cdf_lo[4], idx, cdf_hi[4]);
    for (int c = 3; c >= 0; --c) low = _mm512_fmadd_ps(low, u, _mm512_permutex2var_ps(cdf_lo[c], idx, cdf_hi[c]));
    const __mmask16 up = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLT_UQ);  // x >= 0 (or NaN)
    const __m512 cdf = _mm512_mask_sub_ps(low, up, one, low);
    __m512 y = _mm512_mul_ps(x, cdf);
    const __mmask16 kept = mask ? mask_lanes16(mask + i, n - i) : __mmask16(0);
    if (mask) y = _mm512_maskz_mul_ps(kept, y, vscale);
    _mm512_mask_storeu_ps(g + i, k, y);
    // GELU'(x) = GELU'(-a) for x < 0, 1 - GELU'(-a) otherwise; times the mask and scale
    if (keep) {
      __m512 dl = _mm512_permutex2var_ps(_mm512_load_ps(tb.dgelu[4]), idx, _mm512_load_ps(tb.dgelu[4] + 16));
      for (int c = 3; c >= 0; --c)
        dl = _mm512_fmadd_ps(dl, u, _mm512_permutex2var_ps(_mm512_load_ps(tb.dgelu[c]), idx, _mm512_load_ps(tb.dgelu[c] + 16)));
      __m512 dv = _mm512_mask_sub_ps(dl, up, one, dl);
      if (mask) dv = _mm512_maskz_mul_ps(kept, dv, vscale);
      if (stream && k == __mmask16(0xFFFF))
        _mm512_stream_ps(dst + i, dv);
      else
        _mm512_mask_storeu_ps(dst + i, k, dv);
    }
  }
}
#endif

/// g = Dropout(GELU(x)) over n entries, x = a + bias (+ bias_vec entrywise, if given); g may be
/// a itself. With keep (an application that backward will visit), Dropout'·GELU'(x) =
/// mask · scale · (Φ(x) + x φ(x)) (without a mask, GELU'(x)) is then written over a, or into
/// d_out if given (by streaming stores where aligned: for a tensor only backward reads). That
/// is all backward needs of x and of the mask: erf is evaluated once per training step instead
/// of once forward and once backward, and backward does not read the mask. Float with AVX-512
/// goes to gelu_dropout_forward_avx512; otherwise Eigen's erf, through blocks of 256 entries so
/// the scratch stays in L1.
template <class S>
inline void gelu_dropout_forward(S* a, S* g, Eigen::Index n, const std::uint8_t* mask, S scale,
                                 bool keep, S bias = S(0), const S* bias_vec = nullptr, S* d_out = nullptr) {
  NANONAV_ASSERT(!(keep && !d_out && g == a));  // GELU' would overwrite g
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) {
    gelu_dropout_forward_avx512(a, g, n, mask, scale, keep, bias, bias_vec, d_out);
    return;
  }
#endif
  // erf and exp are evaluated into the aligned blocks here only: Eigen's vector and scalar
  // forms differ in the last bits, and which one an entry gets depends on the alignment of
  // the array written, so the result then does not depend on where a, g and d_out are
  constexpr Eigen::Index kBlock = 256;
  alignas(64) S xb[kBlock], cdf[kBlock], eb[kBlock];
  S* d = d_out ? d_out : a;
  for (Eigen::Index i0 = 0; i0 < n; i0 += kBlock) {
    const Eigen::Index m = std::min(kBlock, n - i0);
    ArrMap<S> xv(xb, m), gv(g + i0, m), cv(cdf, m), ev(eb, m);
    xv = CArrMap<S>(a + i0, m);  // a copy: g (and d) may be a
    if (bias != S(0)) xv += bias;
    if (bias_vec) xv += CArrMap<S>(bias_vec + i0, m);
    cv = S(0.5) * (S(1) + (xv * S(0.70710678118654752440)).erf());
    gv = xv * cv;
    if (mask) {  // written as a product with the 0/1 mask so that it vectorises
      const std::uint8_t* mk = mask + i0;
      S* gi = g + i0;
      for (Eigen::Index i = 0; i < m; ++i) gi[i] *= S(mk[i]) * scale;
    }
    if (keep) {
      ArrMap<S> dv(d + i0, m);
      ev = (S(-0.5) * xv.square()).exp();
      dv = cv + xv * S(0.39894228040143267794) * ev;
      if (mask) {
        const std::uint8_t* mk = mask + i0;
        S* di = d + i0;
        for (Eigen::Index i = 0; i < m; ++i) di[i] *= S(mk[i]) * scale;
      }
    }
  }
}

/// da = dg * d, written over dg, where d = Dropout'·GELU'(a) was kept by gelu_dropout_forward
/// (with keep). Returns the sum of the da (a bias gradient), made in the same pass; with
/// AVX-512 in float, 16 lanes at a time.
template <class S>
inline S gelu_dropout_backward(const S* d, S* dg, Eigen::Index n) {
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) {
    __m512 acc = _mm512_setzero_ps();
    for (Eigen::Index i = 0; i < n; i += 16) {
      const __mmask16 k = lanes16(n - i);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dg + i), _mm512_maskz_loadu_ps(k, d + i));
      _mm512_mask_storeu_ps(dg + i, k, v);
      acc = _mm512_add_ps(acc, v);
    }
    // the 16 lanes summed in a fixed order (GCC 12's _mm512_reduce_add_ps warns inside)
    alignas(64) float lane[16];
    _mm512_store_ps(lane, acc);
    float sum = 0.0f;
    for (float v : lane) sum += v;
    return sum;
  }
#endif
  for (Eigen::Index i = 0; i < n; ++i) dg[i] *= d[i];
  return CArrMap<S>(dg, n).sum();
}

/// z = x + Dropout(z + b + bvec) over n entries (bvec entrywise, may be null; mask null: no
/// dropout): the residual add of a block's two sites, with its mask drawn as 0/1 bytes.
template <class S>
inline void residual_dropout_add(S* z, const S* x, Eigen::Index n, const std::uint8_t* mask, S scale, S b,
                                 const S* bvec) {
#if NANONAV_GEMM_AVX512
  if constexpr (std::is_same_v<S, float>) {
    const __m512 vb = _mm512_set1_ps(b), vscale = _mm512_set1_ps(scale);
    for (Eigen::Index i = 0; i < n; i += 16) {
      const __mmask16 k = lanes16(n - i);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, z + i), vb);
      if (bvec) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bvec + i));
      if (mask) v = _mm512_maskz_mul_ps(mask_lanes16(mask + i, n - i), v, vscale);
      _mm512_mask_storeu_ps(z + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, x + i), v));
    }
    return;
  }
#endif
  for (Eigen::Index i = 0; i < n; ++i) {
    const S v = z[i] + b + (bvec ? bvec[i] : S(0));
    z[i] = x[i] + (mask ? v * (S(mask[i]) * scale) : v);
  }
}

/// Draws the 4 dropout masks of block l, application `app`, for every sample of the chunk: the
/// residual sites' into cc, the hidden sites' into hm.
template <class S>
inline void draw_block_masks(const TrmConfig& c, int chunk, int app, int l, const TrmDropout& dr,
                             TrmBlockCache<S>& cc, TrmHiddenMasks& hm) {
  const nn::Dropout drop(dr.p);
  const int T = c.tokens(), D = c.dim, H = 4 * D, Dh = D / 2;
  const std::size_t CD = static_cast<std::size_t>(chunk) * D;
  const std::size_t d = static_cast<std::size_t>(D), dh = static_cast<std::size_t>(Dh);
  for (int b = 0; b < chunk; ++b) {  // sample b's rows, in this order, from its own stream
    Rng rng = dr.stream(c, b, app, l);
    const auto sb = static_cast<std::size_t>(b);
    drop.sample_mask_rows(rng, &hm.h1[sb * d], static_cast<std::size_t>(H), d, CD);
    drop.sample_mask_rows(rng, &cc.m_o1[sb * d], static_cast<std::size_t>(T), d, CD);
    drop.sample_mask_rows(rng, &hm.h2[sb * dh], static_cast<std::size_t>(T), dh, static_cast<std::size_t>(chunk) * dh);
    drop.sample_mask_rows(rng, &cc.m_o2[sb * d], static_cast<std::size_t>(T), d, CD);
  }
}

/// One mixer block: x (T*C, dim) token-major -> out (may alias x). With keep (the default), cc
/// receives what backward needs: a1 and a2 then hold Dropout'·GELU' of the pre-activations (the
/// masks of the hidden sites folded in), not the pre-activations. Without, cc is only scratch. pk:
/// the block's weights packed by pack_block_weights (forward), or null to pack them in each product.
template <class S>
inline void block_forward(const TrmBlock<S>& blk, const TrmConfig& c, int chunk, const S* x, S* out,
                          TrmBlockCache<S>& cc, TrmHiddenMasks& hm, nn::Mat<S>& nrm, nn::GemmScratch& gs, int app, int l, const TrmDropout& dr,
                          bool keep = true, const TrmPackedBlock* pk = nullptr) {
  const int T = c.tokens(), D = c.dim, Dh = D / 2;
  const Eigen::Index M = static_cast<Eigen::Index>(T) * chunk, CD = static_cast<Eigen::Index>(chunk) * D;
  const S scale = static_cast<S>(1.0 / (1.0 - dr.p));
  if (dr.active) draw_block_masks(c, chunk, app, l, dr, cc, hm);
  const std::uint8_t* mh1 = dr.active ? hm.h1.data() : nullptr;
  const std::uint8_t* mo1 = dr.active ? cc.m_o1.data() : nullptr;
  const std::uint8_t* mh2 = dr.active ? hm.h2.data() : nullptr;
  const std::uint8_t* mo2 = dr.active ? cc.m_o2.data() : nullptr;

  // token mixing: xmid = x + Dropout(W2 Dropout(GELU(W1 LN(x) + b1)) + b2)
  // Both products run their elementwise work as the epilogue of each finished row panel
  // (nn/gemm.hpp): g1 = W1 n1, then g1 += b1, a1 = Dropout'·GELU'(g1) (with keep; streamed:
  // only backward reads a1, so it need not pass through the cache), g1 = Dropout(GELU(g1));
  // z1 = W2 g1 (into xmid), then xmid = x + Dropout(z1 + b2).
  const int H = 4 * D;
  blk.tok_norm.forward(nn::ConstMatMap<S>(x, M, D), nrm, keep ? cc.st1.data() : nullptr);
  const S* b1 = blk.tok_w1.bias.value.data();
  NANONAV_ASSERT(!keep || cc.a1.size() == static_cast<Eigen::Index>(H) * CD);
  S* a1 = keep ? cc.a1.data() : nullptr;
  S* g1 = cc.g1.data();
  nn::gemm<S>(false, false, H, CD, T, blk.tok_w1.weight.value.data(), T, nrm.data(), CD, g1, CD, false, gs,
              [&](Eigen::Index i, Eigen::Index j, Eigen::Index rows, Eigen::Index cols) {
                for (Eigen::Index r = i; r < i + rows; ++r) {
                  const Eigen::Index o = r * CD + j;
                  gelu_dropout_forward(g1 + o, g1 + o, cols, mh1 ? mh1 + o : nullptr, scale, keep, b1[r], static_cast<const S*>(nullptr),
                                       a1 ? a1 + o : nullptr);
                }
              },
              pk ? &pk->w1 : nullptr);
  if (keep) streaming_stores_done<S>();
  const S* b2 = blk.tok_w2.bias.value.data();
  S* xm = cc.xmid.data();
  nn::gemm<S>(false, false, T, CD, H, blk.tok_w2.weight.value.data(), H, g1, CD, xm, CD, false, gs,
              [&](Eigen::Index i, Eigen::Index j, Eigen::Index rows, Eigen::Index cols) {
                for (Eigen::Index r = i; r < i + rows; ++r) {
                  const Eigen::Index o = r * CD + j;
                  residual_dropout_add(xm + o, x + o, cols, mo1 ? mo1 + o : nullptr, scale, b2[r],
                                       static_cast<const S*>(nullptr));
                }
              },
              pk ? &pk->w2 : nullptr);
  // feature mixing: out = xmid + Dropout(Dropout(GELU(LN(xmid) Wc1ᵀ + bc1)) Wc2ᵀ + bc2)
  // (the same epilogue scheme: a2 = n2 Wc1ᵀ, then per row panel a2 += bc1, g2 = Dropout(GELU),
  // a2 = GELU'; out = g2 Wc2ᵀ, then out = xmid + Dropout(out + bc2))
  blk.chan_norm.forward(cc.xmid, nrm, keep ? cc.st2.data() : nullptr);
  const S* bc1 = blk.chan_w1.bias.value.data();
  S* a2 = cc.a2.data();
  S* g2 = cc.g2.data();
  nn::gemm<S>(false, true, M, Dh, D, nrm.data(), D, blk.chan_w1.weight.value.data(), D, a2, Dh, false, gs,
              [&](Eigen::Index i, Eigen::Index, Eigen::Index rows, Eigen::Index) {
                for (Eigen::Index r = i; r < i + rows; ++r) {
                  const Eigen::Index o = r * Dh;
                  gelu_dropout_forward(a2 + o, g2 + o, Dh, mh2 ? mh2 + o : nullptr, scale, keep, S(0), bc1);
                }
              },
              nullptr, pk ? &pk->c1t : nullptr);
  // x is not read again, so out may now be overwritten even when it aliases x.
  const S* bc2 = blk.chan_w2.bias.value.data();
  nn::gemm<S>(false, true, M, D, Dh, g2, Dh, blk.chan_w2.weight.value.data(), Dh, out, D, false, gs,
              [&](Eigen::Index i, Eigen::Index, Eigen::Index rows, Eigen::Index) {
                for (Eigen::Index r = i; r < i + rows; ++r) {
                  const Eigen::Index o = r * D;
                  residual_dropout_add(out + o, xm + o, D, mo2 ? mo2 + o : nullptr, scale, S(0), bc2);
                }
              },
              nullptr, pk ? &pk->c2t : nullptr);
}

/// Backward of block_forward: on entry dx holds dL/d(out), on exit dL/d(x); adds the block's
/// parameter gradients. x is the block input kept by the caller. pk: the block's weights
/// packed by pack_block_weights (backward), or null. With dw1t_sum, tok_w1's gradient is
/// added, transposed, into *dw1t_sum, and the caller adds its transpose to the gradient once
/// for all applications (one transposed add per pass instead of one per application).
template <class S>
inline void block_backward(TrmBlock<S>& blk, const TrmConfig& c, int chunk, const S* x,
                           const TrmBlockCache<S>& cc, bool dropout_active, double p,
                           TrmWorkspace<S>& ws, const TrmPackedBlock* pk = nullptr,
                           nn::Mat<S>* dw1t_sum = nullptr) {
  const int T = c.tokens(), D = c.dim;
  const Eigen::Index M = static_cast<Eigen::Index>(T) * chunk, CD = static_cast<Eigen::Index>(chunk) * D;
  S* dx = ws.dx.data();

  // feature mixing: dz = Dropout'(dout)
  const S* dz2 = dx;
  if (dropout_active) {
    nn::Dropout(p).forward<S>(ws.dx, cc.m_o2.data(), ws.dz, true);  // Dropout' = the same mask and scale
    dz2 = ws.dz.data();
  }
  const int Dh = D / 2;
  nn::ConstMatMap<S> dZ2(dz2, M, D);
  nn::gemm<S>(true, false, D, Dh, M, dz2, D, cc.g2.data(), Dh, blk.chan_w2.weight.grad.data(), Dh, true, ws.gemm);
  blk.chan_w2.bias.grad.row(0) += dZ2.colwise().sum();
  // dg2 = dz2 Wc2, then per row panel dg2 *= a2 (= Dropout'·GELU' of the pre-activation) and
  // dbc1 += it
  S* dg2 = ws.dg2.data();
  const S* d2 = cc.a2.data();
  ArrMap<S> dbc1(blk.chan_w1.bias.grad.data(), Dh);
  nn::gemm<S>(false, false, M, Dh, D, dz2, D, blk.chan_w2.weight.value.data(), Dh, dg2, Dh, false, ws.gemm,
              [&](Eigen::Index i, Eigen::Index, Eigen::Index rows, Eigen::Index) {
                for (Eigen::Index r = i; r < i + rows; ++r) {
                  const Eigen::Index o = r * Dh;
                  gelu_dropout_backward(d2 + o, dg2 + o, Dh);
                  dbc1 += CArrMap<S>(dg2 + o, Dh);
                }
              },
              nullptr, pk ? &pk->c2 : nullptr);
  // n2 = LN(xmid) again: not kept per application, which saves memory (docs/model.md) for one
  // LayerNorm pass (training speed measured level either way); from the row statistics that
  // forward kept, as LN's backward, so neither reduces the rows again (the same bits)
  blk.chan_norm.forward_from_stats(cc.xmid, cc.st2.data(), ws.norm);
  nn::gemm<S>(true, false, Dh, D, M, dg2, Dh, ws.norm.data(), D, blk.chan_w1.weight.grad.data(), D, true, ws.gemm);
  nn::gemm<S>(false, false, M, D, Dh, dg2, Dh, blk.chan_w1.weight.value.data(), D, ws.dn.data(), D, false, ws.gemm,
              nn::NoEpilogue{}, nullptr, pk ? &pk->c1 : nullptr);
  blk.chan_norm.backward(cc.xmid, ws.dn, ws.dx, cc.st2.data());  // dx now holds dL/d(xmid)

  // token mixing
  const S* dz1 = dx;
  if (dropout_active) {
    nn::Dropout(p).forward<S>(ws.dx, cc.m_o1.data(), ws.dz, true);  // Dropout' = the same mask and scale
    dz1 = ws.dz.data();
  }
  nn::ConstMatMap<S> dZ1(dz1, T, CD);
  const int H = 4 * D;
  nn::gemm<S>(false, true, T, H, CD, dz1, CD, cc.g1.data(), CD, blk.tok_w2.weight.grad.data(), H, true, ws.gemm);
  blk.tok_w2.bias.grad.row(0) += dZ1.rowwise().sum().transpose();
  // dg1 = W2ᵀ dz1, then per row panel dg1 *= a1 (= Dropout'·GELU') and db1 += its row sums (the
  // epilogue, nn/gemm.hpp)
  S* dg1 = ws.dg1.data();
  const S* d1 = cc.a1.data();
  S* db1 = blk.tok_w1.bias.grad.data();
  nn::gemm<S>(true, false, H, CD, T, blk.tok_w2.weight.value.data(), H, dz1, CD, dg1, CD, false, ws.gemm,
              [&](Eigen::Index i, Eigen::Index j, Eigen::Index rows, Eigen::Index cols) {
                for (Eigen::Index r = i; r < i + rows; ++r) {
                  const Eigen::Index o = r * CD + j;
                  db1[r] += gelu_dropout_backward(d1 + o, dg1 + o, cols);
                }
              },
              pk ? &pk->w2t : nullptr, nullptr, nn::EpilogueReads{d1, CD});  // a1 comes from memory
  // dW1 += dg1 n1ᵀ, computed as its transpose n1 dg1ᵀ (T rows: the shape the kernel likes)
  blk.tok_norm.forward_from_stats(nn::ConstMatMap<S>(x, M, D), cc.st1.data(), ws.norm);  // n1 = LN(x) again, as n2
  if (dw1t_sum) {
    nn::gemm<S>(false, true, T, H, CD, ws.norm.data(), CD, dg1, CD, dw1t_sum->data(), H, true, ws.gemm);
  } else {
    nn::gemm<S>(false, true, T, H, CD, ws.norm.data(), CD, dg1, CD, ws.dw1t.data(), H, false, ws.gemm);
    blk.tok_w1.weight.grad += ws.dw1t.transpose();
  }
  // dn1 = W1ᵀ dg1
  nn::gemm<S>(true, false, T, CD, H, blk.tok_w1.weight.value.data(), T, dg1, CD, ws.dn.data(), CD, false, ws.gemm,
              nn::NoEpilogue{}, pk ? &pk->w1t : nullptr);
  blk.tok_norm.backward(nn::ConstMatMap<S>(x, M, D), ws.dn, ws.dx, cc.st1.data());  // dx: dL/dx
}

/// Embeds tokens (B, T) sample-major into ws.states[0] (token-major rows).
template <class S>
inline void embed_forward(const Trm<S>& model, const std::uint8_t* tokens, int chunk,
                          TrmWorkspace<S>& ws) {
  const int T = model.config().tokens();
  for (int b = 0; b < chunk; ++b)
    for (int t = 0; t < T; ++t) ws.idx[static_cast<std::size_t>(t) * chunk + b] = tokens[static_cast<std::size_t>(b) * T + t];
  model.embed.forward(ws.idx.data(), static_cast<Eigen::Index>(T) * chunk, ws.states[0]);
  if (model.config().input_injection) ws.emb = ws.states[0];
}

/// Runs all applications. The first R - cached run in place on states[0] without caches; the
/// last `cached` keep their states and caches. The network output ends in states.back() when
/// cached > 0, else in states[0].
template <class S>
inline void network_forward(const Trm<S>& model, int chunk, int cached, const TrmDropout& dr,
                            TrmWorkspace<S>& ws) {
  const TrmConfig& c = model.config();
  const int R = c.recursion, L = c.depth;
  const Eigen::Index M = static_cast<Eigen::Index>(c.tokens()) * chunk;
  const bool inject = c.input_injection;
  if (ws.needs_packing(false)) {
    ws.packed.resize(static_cast<std::size_t>(L));
    for (int l = 0; l < L; ++l) pack_block_weights(model.blocks[l], c, false, ws.packed[static_cast<std::size_t>(l)]);
  }
  for (int a = 0; a < R - cached; ++a) {
    if (inject && a > 0) ws.states[0] += ws.emb;
    S* x = ws.states[0].data();
    for (int l = 0; l < L; ++l)
      block_forward(model.blocks[l], c, chunk, x, x, ws.caches[0], ws.hidden_masks, ws.norm, ws.gemm, a, l, dr, false,
                    &ws.packed[static_cast<std::size_t>(l)]);
    model.norm.forward(ws.states[0], ws.states[0]);
  }
  for (int k = 0; k < cached; ++k) {
    const int a = R - cached + k;
    const std::size_t base = static_cast<std::size_t>(k) * (L + 1);
    // states[base] is the previous application's output (or the embedding when a == 0).
    if (inject && a > 0) ws.states[base] += ws.emb;
    for (int l = 0; l < L; ++l)
      block_forward(model.blocks[l], c, chunk, ws.states[base + l].data(), ws.states[base + l + 1].data(),
                    ws.caches[static_cast<std::size_t>(k) * L + l], ws.hidden_masks, ws.norm, ws.gemm, a, l, dr, true,
                    &ws.packed[static_cast<std::size_t>(l)]);
    model.norm.forward(ws.states[base + L], ws.states[base + L + 1]);
  }
  (void)M;
}

/// Mean-pool and head: x (T*C, dim) -> ws.logits (C, 5). With keep, ws.h1 ends holding GELU'
/// of the hidden pre-activation, for backward.
template <class S>
inline void head_forward(const Trm<S>& model, int chunk, const nn::Mat<S>& x, const TrmDropout& dr,
                         TrmWorkspace<S>& ws, bool keep = true) {
  const TrmConfig& c = model.config();
  const nn::Dropout drop(dr.p);
  if (dr.active)
    for (int b = 0; b < chunk; ++b) {
      Rng rng = dr.stream(c, b, c.recursion, 0);
      drop.sample_mask(rng, &ws.mh0[static_cast<std::size_t>(b) * c.dim], static_cast<std::size_t>(c.dim));
      drop.sample_mask(rng, &ws.mh1[static_cast<std::size_t>(b) * c.dim], static_cast<std::size_t>(c.dim));
    }
  nn::mean_pool_forward<S>(x, chunk, c.tokens(), nn::TokenOrder::TokenMajor, ws.pooled);
  model.head_norm.forward(ws.pooled, ws.h0);
  drop.forward<S>(ws.h0, ws.mh0.data(), ws.h0d, dr.active);
  model.head_w1.forward(ws.h0d, ws.h1);
  gelu_dropout_forward(ws.h1.data(), ws.h1d.data(), ws.h1.size(), dr.active ? ws.mh1.data() : nullptr,
                       static_cast<S>(1.0 / (1.0 - dr.p)), keep);
  model.head_w2.forward(ws.h1d, ws.logits);
}

/// The full forward pass of one micro-batch; returns the network output (T*C, dim).
template <class S>
inline const nn::Mat<S>& forward_chunk(const Trm<S>& model, const std::uint8_t* tokens, int chunk,
                                       int cached, const TrmDropout& dr, TrmWorkspace<S>& ws) {
  embed_forward(model, tokens, chunk, ws);
  network_forward(model, chunk, cached, dr, ws);
  const nn::Mat<S>& out = cached > 0 ? ws.states.back() : ws.states[0];
  head_forward(model, chunk, out, dr, ws, cached > 0);
  return out;
}

/// The aux head on the cell rows of the network output `out` (T*C, dim; the first N*N*C rows
/// are the cells, token-major) -> ws.aux_pred; then the aux loss against targets (C, N*N)
/// sample-major (nn::kNoTarget where none), weighted by aux_distance and scaled by grad_scale
/// into ws.daux (zeroed first). Returns Σ over the micro-batch of aux_distance * ℓ_i.
template <class S>
inline double aux_forward(const Trm<S>& model, int chunk, const nn::Mat<S>& out,
                          const std::uint16_t* targets, double grad_scale, TrmWorkspace<S>& ws) {
  const TrmConfig& c = model.config();
  const int g = c.grid_size * c.grid_size;
  const Eigen::Index cells = static_cast<Eigen::Index>(g) * chunk;
  model.aux_head.forward(out.topRows(cells), ws.aux_pred);
  ws.daux.setZero();
  const double w = c.aux_distance;
  return w * nn::masked_mse<S>(ws.aux_pred.data(), 1, chunk, targets, chunk, g, 1.0 / c.grid_size,
                               w * grad_scale, ws.daux.data());
}

/// Backward of forward_chunk from ws.dlogits (dL/dlogits), and with `aux` also from ws.daux
/// (dL/d of the aux head's predictions, made by aux_forward); adds into the model's grads.
template <class S>
inline void backward_chunk(Trm<S>& model, int chunk, int cached, const TrmDropout& dr,
                           TrmWorkspace<S>& ws, bool aux = false) {
  const TrmConfig& c = model.config();
  const int R = c.recursion, L = c.depth, T = c.tokens();
  const nn::Dropout drop(dr.p);
  // head
  ws.dh.setZero();
  model.head_w2.backward(ws.h1d, ws.dlogits, ws.dh);
  gelu_dropout_backward(ws.h1.data(), ws.dh.data(), ws.dh.size());
  ws.dh2.setZero();
  model.head_w1.backward(ws.h0d, ws.dh, ws.dh2);
  ws.dh.setZero();
  drop.backward<S>(ws.mh0.data(), ws.dh2, ws.dh, dr.active);
  ws.dh2.setZero();
  model.head_norm.backward(ws.pooled, ws.dh, ws.dh2);
  ws.dx2.setZero();
  nn::mean_pool_backward<S>(ws.dh2, chunk, T, nn::TokenOrder::TokenMajor, ws.dx2);  // dL/d(out)
  if (aux) {  // the cell rows of the output also feed the aux head
    NANONAV_ASSERT(cached > 0);
    const Eigen::Index cells = ws.daux.rows();
    model.aux_head.backward(ws.states.back().topRows(cells), ws.daux, ws.dx2.topRows(cells));
  }
  // applications, last first
  if (ws.needs_packing(true)) {
    ws.packed.resize(static_cast<std::size_t>(L));
    for (int l = 0; l < L; ++l) pack_block_weights(model.blocks[l], c, true, ws.packed[static_cast<std::size_t>(l)]);
  }
  const bool inject = c.input_injection;
  if (inject) ws.demb.setZero();
  for (auto& m : ws.dw1t_sum) m.setZero();
  for (int k = cached - 1; k >= 0; --k) {
    const std::size_t base = static_cast<std::size_t>(k) * (L + 1);
    ws.dx.setZero();
    model.norm.backward(ws.states[base + L], ws.dx2, ws.dx);
    for (int l = L - 1; l >= 0; --l)
      block_backward(model.blocks[l], c, chunk, ws.states[base + l].data(),
                     ws.caches[static_cast<std::size_t>(k) * L + l], dr.active, dr.p, ws,
                     &ws.packed[static_cast<std::size_t>(l)], &ws.dw1t_sum[static_cast<std::size_t>(l)]);
    // dx = dL/d(application input); with injection that input was x + e, so e gets it too.
    if (inject && R - cached + k > 0) ws.demb += ws.dx;
    ws.dx.swap(ws.dx2);
  }
  if (cached > 0)
    for (int l = 0; l < L; ++l) model.blocks[l].tok_w1.weight.grad += ws.dw1t_sum[static_cast<std::size_t>(l)].transpose();
  // With all applications cached dx2 is dL/d(first input) = dL/de (plus the injections); with
  // fewer, the embedding is reached only through the injections of the cached applications.
  const Eigen::Index rows = static_cast<Eigen::Index>(T) * chunk;
  if (cached == R) {
    if (inject) ws.dx2 += ws.demb;
    model.embed.backward(ws.idx.data(), rows, ws.dx2);
  } else if (inject && cached > 0) {
    model.embed.backward(ws.idx.data(), rows, ws.demb);
  }
}

/// Runs `f(begin, end, thread)` over fixed micro-batches [begin, end) of `chunk` samples on
/// `threads` OpenMP threads, handed out one at a time to whichever thread is free (so a thread
/// that the host slows down takes fewer: measured 1.007-1.011x on 2 threads against a fixed
/// round-robin split). What f computes for a micro-batch must therefore not depend on which
/// thread runs it. Inside, each thread limits nested parallelism (Eigen's GEMM) to 1.
/// An exception thrown by f is rethrown on the calling thread (the first micro-batch's wins).
template <class F>
inline void for_each_chunk(int batch, int chunk, int threads, F&& f) {
  const int nchunks = (batch + chunk - 1) / chunk;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(nchunks));
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < nchunks; ++i) {
    omp_set_num_threads(1);
    try {
      f(i * chunk, std::min(batch, (i + 1) * chunk), omp_get_thread_num());
    } catch (...) {
      errors[static_cast<std::size_t>(i)] = std::current_exception();
    }
  }
#else
  (void)threads;
  for (int i = 0; i < nchunks; ++i) {
    try {
      f(i * chunk, std::min(batch, (i + 1) * chunk), 0);
    } catch (...) {
      errors[static_cast<std::size_t>(i)] = std::current_exception();
    }
  }
#endif
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace detail

/// TrmTrainer's (and trm_logits') default micro-batch for a model: the largest power of two up
/// to 8 samples whose token-mixing products are at most W columns wide (chunk·dim <= W), with
/// W = 256 from recursion 8 and 512 below. Narrow products pass what one writes for the next
/// (up to the (4·dim, chunk·dim) hidden tensor) through L2; each micro-batch also costs a fixed
/// amount (weights packed, its gradient zeroed, copied out and reduced), which only many
/// applications of the network outweigh. At recursion 8 that gives 8 up to dim 32, 4 at dim 48
/// and 64, 2 at dim 96 and 128, 1 from dim 192; below, 8 up to dim 64, 4 at dim 96 and 128, 2
/// at dim 192 and 256. Measured in training with bench_ab (docs/performance.md): at recursion 8
/// half of the 512-column width ran 1.04-1.08x faster at dim 48, 64 and 128 (the earlier VM:
/// 0.97-1.03x); at recursion 1 and 2 it ran 0.91-0.99x, at 4 level. The rule depends on the
/// config only, not on the machine, so results (whose reduction order follows the
/// micro-batches) stay the same everywhere.
inline int default_micro_batch(const TrmConfig& c) noexcept {
  const long long width = c.recursion >= 8 ? 256 : 512;
  int chunk = 8;
  while (chunk > 1 && static_cast<long long>(chunk) * c.dim > width) chunk /= 2;
  return chunk;
}

/// Inference (evaluation mode: no dropout): logits (batch, 5) for tokens (batch, T) row-major,
/// on one thread. The batch is cut into micro-batches of default_micro_batch(config) samples
/// (fewer if the batch is smaller), the unit whose products stay in L2: at batch 256 that ran
/// 1.5-2.2x faster than one micro-batch of 256 (docs/performance.md). A short last micro-batch
/// is padded with copies of its last sample, so every micro-batch has the same width and after
/// the first call for a batch size ws is reused without allocation. Each sample's logits depend
/// on the micro-batch size only in the last bits (the products' blocking follows their width).
/// Throws InvalidArgument for a token outside the vocabulary.
template <class S>
inline void trm_logits(const Trm<S>& model, const std::uint8_t* tokens, int batch,
                       TrmWorkspace<S>& ws, nn::Mat<S>& logits) {
  NANONAV_ASSERT(batch > 0);
  const TrmConfig& c = model.config();
  const int micro = std::min(batch, default_micro_batch(c));
  const std::size_t T = static_cast<std::size_t>(c.tokens());
  ws.ensure(c, micro, 0, false);
  logits.resize(batch, kNumActions);
  const detail::TrmDropout off;
  const detail::FixedWeightsSpan<S> span(&ws, 1);  // weights packed once for all micro-batches
  for (int b0 = 0; b0 < batch; b0 += micro) {
    const int m = std::min(micro, batch - b0);
    const std::uint8_t* src = tokens + static_cast<std::size_t>(b0) * T;
    if (m < micro) {
      ws.padded_tokens.resize(static_cast<std::size_t>(micro) * T);
      std::copy(src, src + static_cast<std::size_t>(m) * T, ws.padded_tokens.begin());
      for (int i = m; i < micro; ++i)
        std::copy(src + static_cast<std::size_t>(m - 1) * T, src + static_cast<std::size_t>(m) * T,
                  ws.padded_tokens.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(i) * T));
      src = ws.padded_tokens.data();
    }
    detail::forward_chunk(model, src, micro, 0, off, ws);
    logits.middleRows(b0, m) = ws.logits.topRows(m);
  }
}

/// The result of one training (or evaluation) pass over a batch.
struct StepStats {
  double loss = 0.0;  ///< mean over the batch of w_i * ℓ_i
  double aux_loss = 0.0;  ///< with aux targets: mean over the batch of aux_distance * ℓ_aux,i
  int correct = 0;    ///< samples whose argmax logit is an optimal action
  int count = 0;      ///< samples
};

/// Deterministic data-parallel training: the batch is cut into fixed micro-batches of `chunk`
/// samples; each is run by some thread on a private replica of the model and its gradients
/// are reduced in micro-batch order. Results therefore do not depend on the thread count.
template <class S>
class TrmTrainer {
 public:
  /// threads >= 1; chunk = samples per micro-batch (the unit of parallel work), or 0 for
  /// default_micro_batch(model.config()).
  TrmTrainer(Trm<S>& model, int threads, int chunk = 0)
      : model_(model), threads_(std::max(threads, 1)),
        chunk_(chunk > 0 ? chunk : default_micro_batch(model.config())) {
    replicas_.assign(static_cast<std::size_t>(threads_), model_);
    replica_params_.resize(replicas_.size());
    for (std::size_t t = 0; t < replicas_.size(); ++t)
      replicas_[t].for_each_param([&](nn::Param<S>& p) { replica_params_[t].push_back(&p); });
    ws_.resize(static_cast<std::size_t>(threads_));
  }
  TrmTrainer(const TrmTrainer&) = delete;  // holds pointers into its own replicas
  TrmTrainer& operator=(const TrmTrainer&) = delete;
  TrmTrainer(TrmTrainer&&) = default;

  /// Mean loss over the batch; adds d(mean loss)/dθ into the model's grads (the caller zeroes
  /// them). masks[i]: bit a set when action a is optimal for sample i; weights may be null.
  /// Dropout (when train and p > 0) is drawn from dropout_seed per sample. With aux_targets
  /// (batch, N*N) distances to the goal (nn::kNoTarget where none; the model must have the aux
  /// head), the aux loss is added to the objective and reported apart in aux_loss.
  StepStats loss_and_grad(const std::uint8_t* tokens, const std::uint8_t* masks,
                          const float* weights, int batch, std::uint64_t dropout_seed,
                          bool train = true, const std::uint16_t* aux_targets = nullptr) {
    return run(tokens, masks, weights, batch, dropout_seed, train, true, aux_targets);
  }

  /// Loss and accuracy without gradients (evaluation mode unless train).
  StepStats evaluate(const std::uint8_t* tokens, const std::uint8_t* masks, const float* weights,
                     int batch) {
    return run(tokens, masks, weights, batch, 0, false, false, nullptr);
  }

  /// Evaluation-mode logits (batch, 5), in parallel over micro-batches.
  void logits(const std::uint8_t* tokens, int batch, nn::Mat<S>& out) {
    NANONAV_ASSERT(batch > 0);
    sync_replicas();
    const detail::FixedWeightsSpan<S> span(ws_.data(), ws_.size());  // each thread packs once per call
    out.resize(batch, kNumActions);
    const int T = model_.config().tokens();
    detail::for_each_chunk(batch, chunk_, threads_, [&](int b0, int b1, int th) {
      TrmWorkspace<S>& ws = ws_[static_cast<std::size_t>(th)];
      ws.ensure(model_.config(), b1 - b0, 0, false);
      detail::TrmDropout off;
      detail::forward_chunk(replicas_[static_cast<std::size_t>(th)], tokens + static_cast<std::size_t>(b0) * T,
                            b1 - b0, 0, off, ws);
      out.middleRows(b0, b1 - b0) = ws.logits;
    });
  }

  int threads() const noexcept { return threads_; }
  int chunk() const noexcept { return chunk_; }

 private:
  void sync_replicas() {
    for (std::size_t t = 0; t < replicas_.size(); ++t) {
      Trm<S>& r = replicas_[t];
      // The config may have changed (set_dropout / set_grad_last_k): replicas follow it.
      if (r.config().dropout != model_.config().dropout) r.set_dropout(model_.config().dropout);
      if (r.config().grad_last_k != model_.config().grad_last_k) r.set_grad_last_k(model_.config().grad_last_k);
      std::size_t i = 0;
      model_.for_each_param([&](const nn::Param<S>& p) { replica_params_[t][i++]->value = p.value; });
    }
  }

  StepStats run(const std::uint8_t* tokens, const std::uint8_t* masks, const float* weights,
                int batch, std::uint64_t seed, bool train, bool grad, const std::uint16_t* aux) {
    NANONAV_ASSERT(batch > 0);
    NANONAV_ASSERT(aux == nullptr || (grad && model_.config().has_aux()));
    sync_replicas();
    const detail::FixedWeightsSpan<S> span(ws_.data(), ws_.size());  // each thread packs once per call
    const TrmConfig& c = model_.config();
    const int T = c.tokens();
    const int nchunks = (batch + chunk_ - 1) / chunk_;
    const int cached = grad ? c.grad_applications() : 0;
    if (grad && static_cast<int>(chunk_grads_.size()) < nchunks) {
      chunk_grads_.resize(static_cast<std::size_t>(nchunks));
      for (auto& g : chunk_grads_) {
        if (!g.empty()) continue;
        model_.for_each_param([&](const nn::Param<S>& p) { g.push_back(nn::Mat<S>::Zero(p.value.rows(), p.value.cols())); });
      }
    }
    if (static_cast<int>(sums_.size()) < nchunks) sums_.resize(static_cast<std::size_t>(nchunks));
    if (static_cast<int>(aux_sums_.size()) < nchunks) aux_sums_.resize(static_cast<std::size_t>(nchunks));
    const double inv_batch = 1.0 / batch;
    detail::for_each_chunk(batch, chunk_, threads_, [&](int b0, int b1, int th) {
      const int n = b1 - b0;
      Trm<S>& rep = replicas_[static_cast<std::size_t>(th)];
      TrmWorkspace<S>& ws = ws_[static_cast<std::size_t>(th)];
      detail::TrmDropout dr;
      dr.active = train && c.dropout > 0.0;
      dr.p = c.dropout;
      dr.seed = seed;
      dr.first_sample = b0;
      ws.ensure(c, n, cached, dr.active);
      const nn::Mat<S>& out = detail::forward_chunk(rep, tokens + static_cast<std::size_t>(b0) * T, n, cached, dr, ws);
      aux_sums_[static_cast<std::size_t>(b0 / chunk_)] =
          aux ? detail::aux_forward(rep, n, out, aux + static_cast<std::size_t>(b0) * c.grid_size * c.grid_size,
                                    inv_batch, ws)
              : 0.0;
      nn::Mat<S>* dl = nullptr;
      if (grad) {
        ws.dlogits.setZero();
        dl = &ws.dlogits;
      }
      sums_[static_cast<std::size_t>(b0 / chunk_)] = nn::masked_cross_entropy<S>(
          ws.logits, masks + b0, weights ? weights + b0 : nullptr, inv_batch, dl);
      if (!grad) return;
      rep.zero_grad();
      detail::backward_chunk(rep, n, cached, dr, ws, aux != nullptr);
      std::size_t i = 0;
      auto& g = chunk_grads_[static_cast<std::size_t>(b0 / chunk_)];
      rep.for_each_param([&](const nn::Param<S>& p) { g[i++] = p.grad; });
    });
    StepStats st;
    st.count = batch;
    for (int i = 0; i < nchunks; ++i) {
      st.loss += sums_[static_cast<std::size_t>(i)].weighted_loss;
      st.correct += sums_[static_cast<std::size_t>(i)].correct;
      st.aux_loss += aux_sums_[static_cast<std::size_t>(i)];
    }
    st.loss *= inv_batch;
    st.aux_loss *= inv_batch;
    if (grad)
      for (int i = 0; i < nchunks; ++i) {
        std::size_t j = 0;
        const auto& g = chunk_grads_[static_cast<std::size_t>(i)];
        model_.for_each_param([&](nn::Param<S>& p) { p.grad += g[j++]; });
      }
    return st;
  }

  Trm<S>& model_;
  int threads_, chunk_;
  std::vector<Trm<S>> replicas_;            // one per thread
  std::vector<std::vector<nn::Param<S>*>> replica_params_;  // their params, slot order
  std::vector<TrmWorkspace<S>> ws_;         // one per thread
  std::vector<std::vector<nn::Mat<S>>> chunk_grads_;  // one per micro-batch, slot order
  std::vector<nn::LossSums> sums_;
  std::vector<double> aux_sums_;  // Σ aux_distance * ℓ_aux per micro-batch
};

}  // namespace nanonav
