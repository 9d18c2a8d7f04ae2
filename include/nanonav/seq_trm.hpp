#pragma once
/// The sequence TRM of the notebook seed: a recurrent "RecursiveBlock" that reads tokens one
/// by one and predicts the next token at every position, trained here to emit the path
/// through a maze after reading its layout (maze.hpp).
///
/// Model (names follow the notebook's PyTorch modules, so weights map one to one):
///   embedding (vocab, d) -> u_t = norm_input(e_t)                        [once per token]
///   s_0 = 0; per token, `recursions` times (1 in the notebook):
///     z = [norm_state(s), u_t] (2d) -> p = linear2(GELU(linear1(z)))   (2d)
///     s <- s + p[0:d];  o_t = p[d:2d] (from the last recursion)
///   logits_t = output_linear(norm_out(o_t))                             (vocab)
///
/// Layers are the hand-written ones of nn/ (their backward ADDS into gradients). Training is
/// backpropagation through time written out by hand: the forward keeps every step's input,
/// pre-activation and activation; the backward walks the steps in reverse carrying dL/ds, and
/// the weight gradients of all steps are then formed with one GEMM per weight.
/// Decoding carries the state forward (SeqStepper): a new token costs one block step per
/// recursion, not a re-run of the sequence.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "detail/assert.hpp"
#include "detail/rng.hpp"
#include "errors.hpp"
#include "grid.hpp"
#include "maze.hpp"
#include "nn/layers.hpp"
#include "nn/tensor.hpp"

namespace nanonav {

/// Shape of a SeqTrm.
struct SeqTrmConfig {
  int vocab = 10;      ///< token ids are 0 .. vocab-1
  int dim = 16;        ///< state / embedding width d (the block works on 2d)
  int recursions = 1;  ///< block applications per token (1 = the notebook's model)

  /// Throws InvalidArgument unless vocab >= 2, dim >= 2 and 1 <= recursions <= 64.
  void validate() const {
    if (vocab < 2 || dim < 2 || recursions < 1 || recursions > 64)
      throw InvalidArgument("SeqTrmConfig: need vocab >= 2, dim >= 2, 1 <= recursions <= 64; got vocab " +
                            std::to_string(vocab) + ", dim " + std::to_string(dim) +
                            ", recursions " + std::to_string(recursions));
  }
};

/// The notebook's RecursiveBlock: LN(state) and LN(input) with separate norms, concatenated,
/// Linear(2d, 2d) -> GELU -> Linear(2d, 2d); new state = state + first half, output = second.
template <class S>
struct RecursiveBlock {
  static_assert(std::is_floating_point_v<S>, "RecursiveBlock needs a floating-point scalar");
  nn::LayerNorm<S> norm_state, norm_input;
  nn::Linear<S> linear1, linear2;  // (2d, 2d) each, with bias

  /// What forward() keeps for backward(), for n rows.
  struct Cache {
    nn::Mat<S> state, x;  // (n, d) inputs
    nn::Mat<S> z;         // (n, 2d) [norm_state(state), norm_input(x)]
    nn::Mat<S> h;         // (n, 2d) linear1 output
    nn::Mat<S> g;         // (n, 2d) GELU(h)
  };

  RecursiveBlock() = default;
  RecursiveBlock(const std::string& name, int d)
      : norm_state(name + ".norm_state", d), norm_input(name + ".norm_input", d),
        linear1(name + ".linear1", 2 * d, 2 * d), linear2(name + ".linear2", 2 * d, 2 * d) {}

  int dim() const noexcept { return norm_state.dim(); }

  /// PyTorch's default initialisation, in the module order.
  void init(Rng& rng) {
    norm_state.init(rng);
    norm_input.init(rng);
    linear1.init(rng);
    linear2.init(rng);
  }

  /// One application to n independent rows: state (n, d) and x (n, d) -> out (n, d) and
  /// new_state (n, d). `c` is filled for backward().
  void forward(const nn::CRef<S>& state, const nn::CRef<S>& x, nn::MRef<S> out,
               nn::MRef<S> new_state, Cache& c) const {
    const Eigen::Index n = state.rows(), d = dim();
    NANONAV_ASSERT(x.rows() == n && state.cols() == d && x.cols() == d);
    c.state = state;
    c.x = x;
    c.z.resize(n, 2 * d);
    c.h.resize(n, 2 * d);
    c.g.resize(n, 2 * d);
    norm_state.forward(c.state, c.z.leftCols(d));
    norm_input.forward(c.x, c.z.rightCols(d));
    linear1.forward(c.z, c.h);
    nn::Gelu::forward<S>(c.h, c.g);
    nn::Mat<S> p(n, 2 * d);
    linear2.forward(c.g, p);
    new_state = c.state + p.leftCols(d);
    out = p.rightCols(d);
  }

  /// Backward of forward(): adds into dstate, dx and the parameter gradients.
  void backward(const Cache& c, const nn::CRef<S>& dout, const nn::CRef<S>& dnew_state,
                nn::MRef<S> dstate, nn::MRef<S> dx) {
    const Eigen::Index n = c.state.rows(), d = dim();
    nn::Mat<S> dp(n, 2 * d);
    dp.leftCols(d) = dnew_state;
    dp.rightCols(d) = dout;
    nn::Mat<S> dg = nn::Mat<S>::Zero(n, 2 * d), dh = nn::Mat<S>::Zero(n, 2 * d),
               dz = nn::Mat<S>::Zero(n, 2 * d);
    linear2.backward(c.g, dp, dg);
    nn::Gelu::backward<S>(c.h, dg, dh);
    linear1.backward(c.z, dh, dz);
    dstate += dnew_state;  // the residual
    norm_state.backward(c.state, dz.leftCols(d), dstate);
    norm_input.backward(c.x, dz.rightCols(d), dx);
  }

  template <class F>
  void for_each_param(F&& f) {
    norm_state.for_each_param(f);
    norm_input.for_each_param(f);
    linear1.for_each_param(f);
    linear2.for_each_param(f);
  }
  template <class F>
  void for_each_param(F&& f) const {
    norm_state.for_each_param(f);
    norm_input.for_each_param(f);
    linear1.for_each_param(f);
    linear2.for_each_param(f);
  }
};

/// The notebook's TRM: Embedding -> RecursiveBlock over the tokens -> LN -> Linear(d, vocab).
template <class S>
class SeqTrm {
 public:
  static_assert(std::is_floating_point_v<S>, "SeqTrm needs a floating-point scalar");
  nn::Embedding<S> embedding;   // (vocab, d)
  RecursiveBlock<S> block;      // "recursive_block.*"
  nn::LayerNorm<S> norm_out;    // (d)
  nn::Linear<S> output_linear;  // (vocab, d)

  /// Zero parameters (call init()). Throws InvalidArgument for a bad config.
  explicit SeqTrm(const SeqTrmConfig& cfg) : cfg_((cfg.validate(), cfg)) {
    embedding = nn::Embedding<S>("embedding", cfg.vocab, cfg.dim);
    block = RecursiveBlock<S>("recursive_block", cfg.dim);
    norm_out = nn::LayerNorm<S>("norm_out", cfg.dim);
    output_linear = nn::Linear<S>("output_linear", cfg.dim, cfg.vocab);
  }

  /// PyTorch's default initialisation (Embedding N(0,1), Linear U(+-1/sqrt(in)), LN 1/0).
  void init(std::uint64_t seed) {
    Rng rng(seed);
    embedding.init(rng);
    block.init(rng);
    norm_out.init(rng);
    output_linear.init(rng);
  }

  /// f(nn::Param<S>&) over every tensor, in a fixed order (PyTorch's named_parameters order).
  template <class F>
  void for_each_param(F&& f) {
    embedding.for_each_param(f);
    block.for_each_param(f);
    norm_out.for_each_param(f);
    output_linear.for_each_param(f);
  }
  template <class F>
  void for_each_param(F&& f) const {
    embedding.for_each_param(f);
    block.for_each_param(f);
    norm_out.for_each_param(f);
    output_linear.for_each_param(f);
  }

  std::size_t num_params() const {
    std::size_t n = 0;
    for_each_param([&](const nn::Param<S>& p) { n += static_cast<std::size_t>(p.size()); });
    return n;
  }
  void zero_grad() {
    for_each_param([](nn::Param<S>& p) { p.grad.setZero(); });
  }
  const SeqTrmConfig& config() const noexcept { return cfg_; }

 private:
  SeqTrmConfig cfg_;
};

/// Decoding with a carried state: feed() runs `recursions` block steps for one token and
/// keeps the state, so generating n tokens after a prompt of length L costs L + n steps
/// (the notebook re-ran the whole sequence per token: quadratic).
template <class S>
class SeqStepper {
 public:
  explicit SeqStepper(const SeqTrm<S>& model) : m_(&model) { reset(); }

  /// Back to the zero state, nothing read.
  void reset() {
    const int d = m_->config().dim;
    state_ = nn::Mat<S>::Zero(1, d);
    out_ = nn::Mat<S>::Zero(1, d);
    e_.resize(1, d);
    fed_ = 0;
  }

  /// Reads one token (throws InvalidArgument when it is outside the vocabulary).
  void feed(int token) {
    const int d = m_->config().dim;
    m_->embedding.forward(&token, 1, e_);
    nn::Mat<S> next(1, d);
    for (int k = 0; k < m_->config().recursions; ++k) {
      m_->block.forward(state_, e_, out_, next, cache_);
      state_.swap(next);
    }
    ++fed_;
  }
  /// Reads tokens[0..n).
  void feed(const int* tokens, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) feed(tokens[i]);
  }

  /// The logits (1, vocab) predicting the token after the last one fed.
  const nn::Mat<S>& logits() {
    NANONAV_ASSERT(fed_ > 0);
    z_.resize(1, m_->config().dim);
    logits_.resize(1, m_->config().vocab);
    m_->norm_out.forward(out_, z_);
    m_->output_linear.forward(z_, logits_);
    return logits_;
  }

  const nn::Mat<S>& state() const noexcept { return state_; }
  std::size_t tokens_fed() const noexcept { return fed_; }

 private:
  const SeqTrm<S>* m_;
  nn::Mat<S> state_, out_, e_, z_, logits_;
  typename RecursiveBlock<S>::Cache cache_;
  std::size_t fed_ = 0;
};

/// The argmax of a (1, vocab) logits row over the tokens for which allowed(token) is true
/// (the first one on ties); -1 when none is allowed.
template <class S, class Allowed>
inline int argmax_allowed(const nn::Mat<S>& logits, Allowed&& allowed) {
  int best = -1;
  S best_v = -std::numeric_limits<S>::infinity();
  for (Eigen::Index v = 0; v < logits.cols(); ++v) {
    if (!allowed(static_cast<int>(v))) continue;
    if (best < 0 || logits(0, v) > best_v) best = static_cast<int>(v), best_v = logits(0, v);
  }
  return best;
}

/// Greedy decoding with a carried state: reads `prompt`, then appends the allowed argmax
/// token until stop(token) is true, no token is allowed, or max_new tokens were generated.
/// Returns the generated tokens (the prompt not included).
template <class S, class Allowed, class Stop>
inline std::vector<int> greedy_decode(const SeqTrm<S>& model, const std::vector<int>& prompt,
                                      int max_new, Allowed&& allowed, Stop&& stop) {
  if (prompt.empty()) throw InvalidArgument("greedy_decode: the prompt is empty");
  SeqStepper<S> st(model);
  st.feed(prompt.data(), prompt.size());
  std::vector<int> out;
  for (int i = 0; i < max_new; ++i) {
    const int tok = argmax_allowed(st.logits(), allowed);
    if (tok < 0) break;
    out.push_back(tok);
    if (stop(tok)) break;
    st.feed(tok);
  }
  return out;
}

/// How to decode a maze path.
struct MazeDecodeOptions {
  int max_len = 0;           ///< cap on path cells, start included (0: width * height)
  bool constrained = false;  ///< emit only free 4-neighbours of the current cell
  bool no_revisit = false;   ///< with constrained: never a cell already on the path
};

/// Greedy path from the start cell until the goal cell (or the cap): the prompt is the
/// layout, the separator and the start token, as in the notebook. A token that names no cell
/// becomes Pos{-1, -1} (check_path() then reports the path invalid).
template <class S>
inline std::vector<Pos> decode_maze_path(const SeqTrm<S>& model, const Problem& p,
                                         const MazeDecodeOptions& opt = {}) {
  const int w = p.grid.width(), h = p.grid.height();
  if (model.config().vocab < maze_vocab(w, h))
    throw InvalidArgument("decode_maze_path: the model's vocabulary (" +
                          std::to_string(model.config().vocab) + ") is smaller than a " +
                          std::to_string(w) + "x" + std::to_string(h) + " maze needs");
  std::vector<int> prompt = maze_layout_tokens(p);
  prompt.push_back(maze_token::kSep);
  prompt.push_back(cell_token(p.start, w));
  const int cap = opt.max_len > 0 ? opt.max_len : w * h;
  const int goal_tok = cell_token(p.goal, w);
  std::vector<Pos> path{p.start};
  std::vector<std::uint8_t> visited(static_cast<std::size_t>(w * h), 0);
  visited[p.grid.index(p.start)] = 1;
  Pos cur = p.start;
  const auto allowed = [&](int tok) {
    if (!opt.constrained) return true;
    if (!is_cell_token(tok, w, h)) return false;
    const Pos q = token_cell(tok, w);
    if (opt.no_revisit && visited[p.grid.index(q)]) return false;
    return p.grid.is_free(q) && std::abs(q.row - cur.row) + std::abs(q.col - cur.col) == 1;
  };
  const auto stop = [&](int tok) {
    cur = is_cell_token(tok, w, h) ? token_cell(tok, w) : Pos{-1, -1};
    if (p.grid.in_bounds(cur)) visited[p.grid.index(cur)] = 1;
    path.push_back(cur);
    return tok == goal_tok || !is_cell_token(tok, w, h);
  };
  if (p.start != p.goal) greedy_decode(model, prompt, cap - 1, allowed, stop);
  return path;
}

/// One training sequence: the model reads tokens[t] and predicts tokens[t + 1]; mask[t]
/// (size tokens.size() - 1) says whether that prediction counts in the loss.
struct SeqExample {
  std::vector<int> tokens;
  std::vector<std::uint8_t> mask;
};

/// The notebook's maze example: layout, separator, path; the loss covers the predictions
/// from the separator on (start cell, then every next path cell).
inline SeqExample maze_example(const Problem& p, const std::vector<Pos>& path) {
  SeqExample ex;
  ex.tokens = maze_sequence(p, path);
  ex.mask.assign(ex.tokens.size() - 1, 0);
  const auto begin = static_cast<std::size_t>(maze_loss_begin(p.grid.width(), p.grid.height()));
  for (std::size_t t = begin; t < ex.mask.size(); ++t) ex.mask[t] = 1;
  return ex;
}

/// What a loss_and_grad() call measured.
struct SeqStats {
  double loss = 0.0;  ///< mean cross-entropy over the counted predictions
  int count = 0;      ///< counted predictions
  int correct = 0;    ///< counted predictions whose argmax is the target
};

namespace detail {

/// One sequence's forward and backward-through-time, with reusable buffers (they only grow).
/// Rows: t = token (T of them), j = t * K + k = block step (J = T * K), m = counted output.
template <class S>
struct SeqPass {
  nn::Mat<S> emb, u, xu;         // (T, d), (T, d) norm_input(emb), (T, 2d) u W1[:, d:]^T + b1
  nn::Mat<S> sprev, zcat, h, g;  // (J, d) state before step j, (J, 2d) [norm_state(s), u], (J, 2d), (J, 2d)
  nn::Mat<S> o, zo, logits;      // (M, d) outputs, (M, d) norm_out(o), (M, vocab)
  nn::Mat<S> dlogits, dzo, dout; // (M, vocab), (M, d), (M, d)
  nn::Mat<S> dp, dh, dsum, du, demb;  // (J, 2d), (J, 2d), (T, 2d), (T, d), (T, d)
  nn::Mat<S> s, ds, dg;          // (1, d), (1, d), (1, 2d)
  std::vector<int> out_step;     // for each output m, its token t
  std::vector<int> out_of_token; // for each token t, its output m or -1

  static void grow(nn::Mat<S>& m, Eigen::Index rows, Eigen::Index cols) {
    if (m.rows() < rows || m.cols() != cols) m.resize(std::max(rows, m.rows()), cols);
  }

  /// Forward over inputs tokens[0..T); an output (and logits) is made at token t when
  /// want[t]. Parameters are read from `m`.
  void forward(const SeqTrm<S>& m, const int* tokens, int T, const std::uint8_t* want) {
    const int d = m.config().dim, K = m.config().recursions, V = m.config().vocab;
    const int J = T * K;
    out_step.clear();
    out_of_token.assign(static_cast<std::size_t>(T), -1);
    for (int t = 0; t < T; ++t)
      if (want[t]) {
        out_of_token[static_cast<std::size_t>(t)] = static_cast<int>(out_step.size());
        out_step.push_back(t);
      }
    const int M = static_cast<int>(out_step.size());
    grow(emb, T, d);
    grow(u, T, d);
    grow(xu, T, 2 * d);
    grow(sprev, J, d);
    grow(zcat, J, 2 * d);
    grow(h, J, 2 * d);
    grow(g, J, 2 * d);
    grow(o, M, d);
    grow(zo, M, d);
    grow(logits, M, V);
    s.setZero(1, d);

    const auto& W1 = m.block.linear1.weight.value;  // (2d, 2d): columns [state | input]
    const auto& W2 = m.block.linear2.weight.value;  // (2d, 2d): rows [state | output]
    const auto& b2 = m.block.linear2.bias.value;    // (1, 2d)
    m.embedding.forward(tokens, T, emb.topRows(T));
    m.block.norm_input.forward(emb.topRows(T), u.topRows(T));
    // The input half of linear1 does not depend on the state: one GEMM over all tokens.
    xu.topRows(T).noalias() = u.topRows(T) * W1.rightCols(d).transpose();
    xu.topRows(T).rowwise() += m.block.linear1.bias.value.row(0);
    for (int t = 0; t < T; ++t) {
      for (int k = 0; k < K; ++k) {
        const int j = t * K + k;
        sprev.row(j) = s;
        m.block.norm_state.forward(sprev.row(j), zcat.row(j).leftCols(d));
        zcat.row(j).rightCols(d) = u.row(t);
        h.row(j).noalias() = zcat.row(j).leftCols(d) * W1.leftCols(d).transpose();
        h.row(j) += xu.row(t);
        for (int c = 0; c < 2 * d; ++c) g(j, c) = nn::Gelu::value(h(j, c));
        // Only the state half of linear2 is needed unless this step's output is used.
        s.noalias() += g.row(j) * W2.topRows(d).transpose();
        s += b2.leftCols(d);
      }
      const int mo = out_of_token[static_cast<std::size_t>(t)];
      if (mo >= 0) {
        const int j = t * K + K - 1;
        o.row(mo).noalias() = g.row(j) * W2.bottomRows(d).transpose();
        o.row(mo) += b2.rightCols(d);
      }
    }
    if (M > 0) {
      m.norm_out.forward(o.topRows(M), zo.topRows(M));
      m.output_linear.forward(zo.topRows(M), logits.topRows(M));
    }
  }

  /// Softmax cross-entropy of the outputs against targets[t]; dlogits = scale * dloss/dlogits.
  /// Returns the summed loss (double) and counts correct argmaxes.
  double loss(const int* targets, S scale, int& correct) {
    const int M = static_cast<int>(out_step.size());
    const Eigen::Index V = logits.cols();
    grow(dlogits, M, V);
    double total = 0.0;
    for (int mo = 0; mo < M; ++mo) {
      const int target = targets[out_step[static_cast<std::size_t>(mo)]];
      Eigen::Index arg = 0;
      const S zmax = logits.row(mo).maxCoeff(&arg);
      double sum = 0.0;
      for (Eigen::Index v = 0; v < V; ++v) {
        const S e = std::exp(logits(mo, v) - zmax);
        dlogits(mo, v) = e;
        sum += static_cast<double>(e);
      }
      total += std::log(sum) - static_cast<double>(logits(mo, target) - zmax);
      correct += arg == target;
      const S inv = static_cast<S>(1.0 / sum) * scale;
      dlogits.row(mo) *= inv;
      dlogits(mo, target) -= scale;
    }
    return total;
  }

  /// Backward through time after forward() and loss(); adds every gradient into `gm`'s
  /// parameter grads (gm holds the same parameter values as the model forward() read).
  void backward(SeqTrm<S>& gm, const int* tokens, int T) {
    const int d = gm.config().dim, K = gm.config().recursions;
    const int J = T * K, M = static_cast<int>(out_step.size());
    grow(dzo, M, d);
    grow(dout, M, d);
    grow(dp, J, 2 * d);
    grow(dh, J, 2 * d);
    grow(dsum, T, 2 * d);
    grow(du, T, d);
    grow(demb, T, d);
    ds.setZero(1, d);
    dg.resize(1, 2 * d);
    if (M > 0) {
      dzo.topRows(M).setZero();
      dout.topRows(M).setZero();
      gm.output_linear.backward(zo.topRows(M), dlogits.topRows(M), dzo.topRows(M));
      gm.norm_out.backward(o.topRows(M), dzo.topRows(M), dout.topRows(M));
    }
    const auto& W1 = gm.block.linear1.weight.value;
    const auto& W2 = gm.block.linear2.weight.value;
    for (int t = T - 1; t >= 0; --t) {
      const int mo = out_of_token[static_cast<std::size_t>(t)];
      for (int k = K - 1; k >= 0; --k) {
        const int j = t * K + k;
        // p_j = linear2(g_j): its state half feeds s_{j+1} (gradient ds), its output half
        // feeds the logits at the last recursion of a counted token.
        dp.row(j).leftCols(d) = ds;
        if (k == K - 1 && mo >= 0) {
          dp.row(j).rightCols(d) = dout.row(mo);
          dg.noalias() = dp.row(j) * W2;
        } else {
          dp.row(j).rightCols(d).setZero();
          dg.noalias() = ds * W2.topRows(d);
        }
        for (int c = 0; c < 2 * d; ++c) dh(j, c) = dg(0, c) * nn::Gelu::derivative(h(j, c));
        // s_j = s_{j-1} + p[0:d]: ds passes through the residual and gains LN_state's share.
        dg.leftCols(d).noalias() = dh.row(j) * W1.leftCols(d);
        gm.block.norm_state.backward(sprev.row(j), dg.leftCols(d), ds);
      }
    }
    gm.block.linear2.accumulate_param_grads(g.topRows(J), dp.topRows(J));
    gm.block.linear1.accumulate_param_grads(zcat.topRows(J), dh.topRows(J));
    if (K == 1) {
      du.topRows(T).noalias() = dh.topRows(T) * W1.rightCols(d);
    } else {
      for (int t = 0; t < T; ++t) {
        dsum.row(t) = dh.row(t * K);
        for (int k = 1; k < K; ++k) dsum.row(t) += dh.row(t * K + k);
      }
      du.topRows(T).noalias() = dsum.topRows(T) * W1.rightCols(d);
    }
    demb.topRows(T).setZero();
    gm.block.norm_input.backward(emb.topRows(T), du.topRows(T), demb.topRows(T));
    gm.embedding.backward(tokens, T, demb.topRows(T));
  }
};

}  // namespace detail

/// Logits (T, vocab) at every position of tokens[0..T), by the training forward (the whole
/// sequence at once). Throws InvalidArgument for a token outside the vocabulary.
template <class S>
inline void seq_logits(const SeqTrm<S>& model, const std::vector<int>& tokens,
                       nn::Mat<S>& logits) {
  detail::SeqPass<S> pass;
  const int T = static_cast<int>(tokens.size());
  const std::vector<std::uint8_t> want(tokens.size(), 1);
  pass.forward(model, tokens.data(), T, want.data());
  logits = pass.logits.topRows(T);
}

/// Mean masked cross-entropy over a batch of sequences and its gradient, added into the
/// model's parameter grads (the caller zeroes them). Sequences are processed in parallel on
/// `threads` OpenMP threads; each fixed chunk of kChunk sequences accumulates into its own
/// gradient replica and the replicas are summed in chunk order, so the result does not depend
/// on the thread count.
template <class S>
class SeqTrainer {
 public:
  static constexpr int kChunk = 4;

  SeqTrainer(SeqTrm<S>& model, int threads) : model_(&model), threads_(std::max(1, threads)) {}

  void set_threads(int threads) noexcept { threads_ = std::max(1, threads); }

  /// Throws InvalidArgument for an empty batch, a sequence shorter than 2, a mask of the
  /// wrong size, no counted prediction at all, or a token outside the vocabulary.
  SeqStats loss_and_grad(const std::vector<SeqExample>& batch) { return run(batch, true); }

  /// The same loss (teacher forcing), without the backward pass; grads are untouched.
  SeqStats loss(const std::vector<SeqExample>& batch) { return run(batch, false); }

 private:
  SeqStats run(const std::vector<SeqExample>& batch, bool with_grad) {
    const int B = static_cast<int>(batch.size());
    if (B == 0) throw InvalidArgument("SeqTrainer: empty batch");
    long long counted = 0;
    const int V = model_->config().vocab;
    for (int b = 0; b < B; ++b) {
      const SeqExample& ex = batch[static_cast<std::size_t>(b)];
      if (ex.tokens.size() < 2 || ex.mask.size() + 1 != ex.tokens.size())
        throw InvalidArgument("SeqTrainer: sequence " + std::to_string(b) +
                              " needs >= 2 tokens and tokens.size() - 1 mask entries");
      for (int tok : ex.tokens)
        if (tok < 0 || tok >= V)
          throw InvalidArgument("SeqTrainer: sequence " + std::to_string(b) + " has token " +
                                std::to_string(tok) + " outside [0, " + std::to_string(V) + ")");
      for (auto mk : ex.mask) counted += mk != 0;
    }
    if (counted == 0) throw InvalidArgument("SeqTrainer: no prediction is counted by the masks");
    const S scale = static_cast<S>(1.0 / static_cast<double>(counted));

    const int chunks = (B + kChunk - 1) / kChunk;
    while (static_cast<int>(replicas_.size()) < chunks) replicas_.emplace_back(model_->config());
    for (int c = 0; c < chunks; ++c) sync(replicas_[static_cast<std::size_t>(c)]);
    loss_.assign(static_cast<std::size_t>(chunks), 0.0);
    correct_.assign(static_cast<std::size_t>(chunks), 0);
    const int nthreads = std::min(threads_, chunks);
    if (static_cast<int>(passes_.size()) < nthreads) passes_.resize(static_cast<std::size_t>(nthreads));

#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int c = 0; c < chunks; ++c) {
#ifdef _OPENMP
      omp_set_num_threads(1);  // this thread's Eigen GEMMs stay single-threaded (no nesting)
      detail::SeqPass<S>& pass = passes_[static_cast<std::size_t>(omp_get_thread_num())];
#else
      detail::SeqPass<S>& pass = passes_[0];
#endif
      SeqTrm<S>& rep = replicas_[static_cast<std::size_t>(c)];
      for (int b = c * kChunk; b < std::min(B, (c + 1) * kChunk); ++b) {
        const SeqExample& ex = batch[static_cast<std::size_t>(b)];
        const int T = static_cast<int>(ex.tokens.size()) - 1;
        pass.forward(rep, ex.tokens.data(), T, ex.mask.data());
        int correct = 0;
        loss_[static_cast<std::size_t>(c)] += pass.loss(ex.tokens.data() + 1, scale, correct);
        correct_[static_cast<std::size_t>(c)] += correct;
        if (with_grad) pass.backward(rep, ex.tokens.data(), T);
      }
    }

    SeqStats st;
    st.count = static_cast<int>(counted);
    double total = 0.0;
    std::vector<nn::Param<S>*> mine;
    model_->for_each_param([&](nn::Param<S>& p) { mine.push_back(&p); });
    for (int c = 0; c < chunks; ++c) {
      total += loss_[static_cast<std::size_t>(c)];
      st.correct += correct_[static_cast<std::size_t>(c)];
      if (!with_grad) continue;
      std::size_t slot = 0;
      replicas_[static_cast<std::size_t>(c)].for_each_param([&](const nn::Param<S>& p) {
        mine[slot++]->grad += p.grad;
      });
    }
    st.loss = total / static_cast<double>(counted);
    return st;
  }

  // Copies the model's values into a replica and zeroes its grads.
  void sync(SeqTrm<S>& rep) {
    std::vector<const nn::Param<S>*> src;
    model_->for_each_param([&](const nn::Param<S>& p) { src.push_back(&p); });
    std::size_t slot = 0;
    rep.for_each_param([&](nn::Param<S>& p) {
      p.value = src[slot++]->value;
      p.grad.setZero();
    });
  }

  SeqTrm<S>* model_;
  int threads_;
  std::vector<SeqTrm<S>> replicas_;
  std::vector<detail::SeqPass<S>> passes_;
  std::vector<double> loss_;
  std::vector<int> correct_;
};

}  // namespace nanonav
