#pragma once
/// State -> tokens, and the 8 symmetries (dihedral group D4) of a square grid acting on maps,
/// positions, actions, action masks and token sequences.
///
/// Token layout for an N x N map (T = N*N + 4 tokens, all uint8), two encodings:
///   [0, N*N)   cells, row-major: 1 = free, 2 = obstacle
///              Encoding::Marked only, markers on the grid (vocabulary 14 + N):
///                N + 3 the agent, N + 4 the goal, N + 5 the agent standing on the goal,
///                N + 6 + a  the agent's free neighbour in direction a (0 Up, 1 Down,
///                           2 Left, 3 Right),
///                N + 10 + a the goal when it is the agent's neighbour in direction a
///   N*N + 0    current row + 3
///   N*N + 1    current column + 3
///   N*N + 2    goal row + 3
///   N*N + 3    goal column + 3
/// Encoding::Seed is the seed's (vocabulary 3 + N): agent and goal appear only as coordinate
/// tokens, so the network must learn to locate them and, harder for a mixer whose token
/// mixing has no notion of adjacency, which cells next to the agent are free. Encoding::Marked
/// also marks agent, goal and the agent's free neighbours on the grid (the robot's own local
/// view); same T, same network. Token 0 is never produced. N <= 252 (seed) or 242 (marked)
/// so that every token fits a byte.
///
/// The 8 transforms, as maps of a cell (r, c) of an N x N grid, m = N - 1, and of the four
/// moves (Stay is fixed by all of them):
///
///   id  name           (r, c) ->        Up     Down   Left   Right   numpy
///   0   Identity       (r, c)           Up     Down   Left   Right
///   1   Rot90          (c, m - r)       Right  Left   Up     Down    rot90(g, k=-1)  clockwise
///   2   Rot180         (m - r, m - c)   Down   Up     Right  Left    rot90(g, k=2)
///   3   Rot270         (m - c, r)       Left   Right  Down   Up      rot90(g, k=-3)
///   4   FlipH          (r, m - c)       Up     Down   Right  Left    fliplr(g)
///   5   FlipV          (m - r, c)       Down   Up     Left   Right   flipud(g)
///   6   Transpose      (c, r)           Left   Right  Up     Down    g.T
///   7   AntiTranspose  (m - c, m - r)   Right  Left   Down   Up      rot90(g, 2).T
///
/// Inverses: Rot90 <-> Rot270; every other transform is its own inverse.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "detail/assert.hpp"
#include "errors.hpp"
#include "grid.hpp"

namespace nanonav {

inline constexpr std::uint8_t kTokenFree = 1;
inline constexpr std::uint8_t kTokenObstacle = 2;
inline constexpr std::uint8_t kTokenCoordOffset = 3;  ///< coordinate k is token k + 3
inline constexpr int kMaxEncodedGridSize = 252;
inline constexpr int kMaxMarkedGridSize = 242;  ///< the largest marker, N + 13, fits a byte

/// How a state becomes tokens (see the top of this header).
enum class Encoding : std::uint8_t { Seed = 0, Marked = 1 };

inline const char* to_string(Encoding e) noexcept { return e == Encoding::Marked ? "marked" : "seed"; }

/// "seed" or "marked". Throws InvalidArgument for anything else.
inline Encoding parse_encoding(const std::string& s) {
  if (s == "seed") return Encoding::Seed;
  if (s == "marked") return Encoding::Marked;
  throw InvalidArgument("unknown encoding '" + s + "' (expected seed or marked)");
}

/// Tokens per state for an N x N map: N*N cells + 4 coordinates.
constexpr int tokens_per_state(int n) noexcept { return n * n + 4; }
/// Number of distinct token values for an N x N map: 0 (unused), 1, 2, N coordinates, and
/// with Encoding::Marked the 11 cell markers.
constexpr int vocab_size(int n, Encoding e = Encoding::Seed) noexcept {
  return 3 + n + (e == Encoding::Marked ? 11 : 0);
}
/// The cell markers of Encoding::Marked.
constexpr std::uint8_t agent_token(int n) noexcept { return static_cast<std::uint8_t>(n + 3); }
constexpr std::uint8_t goal_token(int n) noexcept { return static_cast<std::uint8_t>(n + 4); }
constexpr std::uint8_t agent_on_goal_token(int n) noexcept { return static_cast<std::uint8_t>(n + 5); }
/// The agent's neighbour in direction `a` (Up..Right): free (goal = false) or the goal.
constexpr std::uint8_t neighbour_token(int n, Action a, bool goal) noexcept {
  return static_cast<std::uint8_t>(n + 6 + static_cast<int>(a) + (goal ? 4 : 0));
}
namespace detail {
/// Which neighbour marker v is: k = direction + 4 * (is the goal), in [0, 8); -1 otherwise.
constexpr int neighbour_marker(int n, unsigned v) noexcept {
  const int k = static_cast<int>(v) - neighbour_token(n, Action::Up, false);
  return k >= 0 && k < 8 ? k : -1;
}
}  // namespace detail
/// Whether v is a valid cell token of an encoding.
constexpr bool valid_cell_token(int n, Encoding e, unsigned v) noexcept {
  return v == kTokenFree || v == kTokenObstacle ||
         (e == Encoding::Marked && v >= agent_token(n) && v <= neighbour_token(n, Action::Right, true));
}

/// Checks that a map can be encoded (square, 2..252 cells a side) and returns its side N.
/// Throws InvalidArgument otherwise.
inline int encodable_size(const GridView& g) {
  if (g.width != g.height)
    throw InvalidArgument("encoding: the map must be square, got " + std::to_string(g.width) +
                          "x" + std::to_string(g.height));
  if (g.width < 2 || g.width > kMaxEncodedGridSize)
    throw InvalidArgument("encoding: the map side must be in [2, " +
                          std::to_string(kMaxEncodedGridSize) + "], got " +
                          std::to_string(g.width));
  return g.width;
}

namespace detail {
inline bool on_map(int n, Pos p) noexcept { return p.row >= 0 && p.col >= 0 && p.row < n && p.col < n; }
inline void check_encoded_pos(int n, Pos p, const char* which) {
  if (!on_map(n, p))
    throw InvalidArgument(std::string("encode_state: ") + which + " (" + std::to_string(p.row) +
                          "," + std::to_string(p.col) + ") is outside the " + std::to_string(n) +
                          "x" + std::to_string(n) + " map");
}
}  // namespace detail

namespace detail {
inline Pos encoded_pos(int n, const std::uint8_t* out, int k) noexcept {
  return {out[n * n + k] - kTokenCoordOffset, out[n * n + k + 1] - kTokenCoordOffset};
}
// Writes the markers of an agent at `cur` heading to `goal` over plain cell tokens.
inline void mark_agent(int n, Pos cur, Pos goal, std::uint8_t* out) noexcept {
  out[goal.row * n + goal.col] = goal_token(n);
  out[cur.row * n + cur.col] = cur == goal ? agent_on_goal_token(n) : agent_token(n);
  for (int a = 0; a < 4; ++a) {
    const Pos q = step(cur, static_cast<Action>(a));
    if (!on_map(n, q)) continue;
    std::uint8_t& v = out[q.row * n + q.col];
    if (v == kTokenFree) v = neighbour_token(n, static_cast<Action>(a), false);
    else if (v == goal_token(n)) v = neighbour_token(n, static_cast<Action>(a), true);
  }
}
// Undoes mark_agent for an agent at `cur`: back to plain free cells and the goal marker.
inline void unmark_agent(int n, Pos cur, std::uint8_t* out) noexcept {
  std::uint8_t& c = out[cur.row * n + cur.col];
  c = c == agent_on_goal_token(n) ? goal_token(n) : kTokenFree;
  for (int a = 0; a < 4; ++a) {
    const Pos q = step(cur, static_cast<Action>(a));
    if (!on_map(n, q)) continue;
    std::uint8_t& v = out[q.row * n + q.col];
    const int k = neighbour_marker(n, v);
    if (k >= 0) v = k < 4 ? kTokenFree : goal_token(n);
  }
}
}  // namespace detail

/// Moves the agent of a complete encoded state (`out`, tokens_per_state(n) bytes, written by
/// encode_state with the same encoding) to `cur`: rewrites the two current-position tokens
/// and, with Encoding::Marked, the old and new agent cells. The map and goal do not change
/// while an agent moves, so rollouts call this instead of encode_state.
inline void encode_current(int n, Pos cur, std::uint8_t* out, Encoding e = Encoding::Seed) {
  detail::check_encoded_pos(n, cur, "current position");
  if (e == Encoding::Marked) {
    const Pos old = detail::encoded_pos(n, out, 0), goal = detail::encoded_pos(n, out, 2);
    NANONAV_ASSERT(detail::on_map(n, old) && detail::on_map(n, goal));
    detail::unmark_agent(n, old, out);
    detail::mark_agent(n, cur, goal, out);
  }
  out[n * n + 0] = static_cast<std::uint8_t>(cur.row + kTokenCoordOffset);
  out[n * n + 1] = static_cast<std::uint8_t>(cur.col + kTokenCoordOffset);
}

/// Writes the tokens_per_state(N) tokens of (map, current, goal) into `out` (no allocation).
/// Throws InvalidArgument for a map encodable_size rejects or a position off the map, and
/// with Encoding::Marked also when the agent or the goal stands on an obstacle (the marker
/// would hide it).
inline void encode_state(const GridView& g, Pos cur, Pos goal, std::uint8_t* out,
                         Encoding e = Encoding::Seed) {
  const int n = encodable_size(g);
  detail::check_encoded_pos(n, goal, "goal");
  detail::check_encoded_pos(n, cur, "current position");
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c)
      out[r * n + c] = g.blocked({r, c}) ? kTokenObstacle : kTokenFree;
  out[n * n + 0] = static_cast<std::uint8_t>(cur.row + kTokenCoordOffset);
  out[n * n + 1] = static_cast<std::uint8_t>(cur.col + kTokenCoordOffset);
  out[n * n + 2] = static_cast<std::uint8_t>(goal.row + kTokenCoordOffset);
  out[n * n + 3] = static_cast<std::uint8_t>(goal.col + kTokenCoordOffset);
  if (e == Encoding::Marked) {
    if (n > kMaxMarkedGridSize)
      throw InvalidArgument("encoding: the marked encoding takes maps of at most " +
                            std::to_string(kMaxMarkedGridSize) + " cells a side, got " + std::to_string(n));
    if (g.blocked(cur) || g.blocked(goal))
      throw InvalidArgument(std::string("encode_state: the ") + (g.blocked(cur) ? "current position" : "goal") +
                            " is on an obstacle");
    detail::mark_agent(n, cur, goal, out);
  }
}

/// Convenience form of encode_state that allocates its result.
inline std::vector<std::uint8_t> encode_state(const GridView& g, Pos cur, Pos goal,
                                              Encoding e = Encoding::Seed) {
  std::vector<std::uint8_t> out(static_cast<std::size_t>(tokens_per_state(encodable_size(g))));
  encode_state(g, cur, goal, out.data(), e);
  return out;
}

// ---- dihedral transforms ---------------------------------------------------------------

/// The 8 symmetries of a square; see the table at the top of this header.
enum class Dihedral : std::uint8_t {
  Identity = 0,
  Rot90 = 1,   ///< 90 degrees clockwise
  Rot180 = 2,
  Rot270 = 3,  ///< 270 degrees clockwise (90 counter-clockwise)
  FlipH = 4,   ///< left <-> right
  FlipV = 5,   ///< up <-> down
  Transpose = 6,
  AntiTranspose = 7,
};
inline constexpr int kNumDihedral = 8;

inline const char* to_string(Dihedral d) noexcept {
  switch (d) {
    case Dihedral::Identity: return "identity";
    case Dihedral::Rot90: return "rot90";
    case Dihedral::Rot180: return "rot180";
    case Dihedral::Rot270: return "rot270";
    case Dihedral::FlipH: return "flip_h";
    case Dihedral::FlipV: return "flip_v";
    case Dihedral::Transpose: return "transpose";
    case Dihedral::AntiTranspose: return "anti_transpose";
  }
  return "?";
}

namespace detail {
// Each transform as a signed permutation matrix acting on centred coordinates
// (2r - m, 2c - m): {a, b, c, d} means r' = a r + b c, c' = c r + d c.
inline constexpr std::array<std::array<int, 4>, kNumDihedral> kDihedralMatrix{{
    {{1, 0, 0, 1}},    // Identity
    {{0, 1, -1, 0}},   // Rot90
    {{-1, 0, 0, -1}},  // Rot180
    {{0, -1, 1, 0}},   // Rot270
    {{1, 0, 0, -1}},   // FlipH
    {{-1, 0, 0, 1}},   // FlipV
    {{0, 1, 1, 0}},    // Transpose
    {{0, -1, -1, 0}},  // AntiTranspose
}};

constexpr Dihedral dihedral_from_matrix(const std::array<int, 4>& m) noexcept {
  for (int i = 0; i < kNumDihedral; ++i) {
    const auto& t = kDihedralMatrix[static_cast<std::size_t>(i)];
    if (t[0] == m[0] && t[1] == m[1] && t[2] == m[2] && t[3] == m[3])
      return static_cast<Dihedral>(i);
  }
  return Dihedral::Identity;  // unreachable: D4 is closed under products
}
}  // namespace detail

/// The transform that applies b first, then a (a o b).
constexpr Dihedral compose(Dihedral a, Dihedral b) noexcept {
  const auto& x = detail::kDihedralMatrix[static_cast<std::size_t>(a)];
  const auto& y = detail::kDihedralMatrix[static_cast<std::size_t>(b)];
  return detail::dihedral_from_matrix({{x[0] * y[0] + x[1] * y[2], x[0] * y[1] + x[1] * y[3],
                                        x[2] * y[0] + x[3] * y[2], x[2] * y[1] + x[3] * y[3]}});
}

/// The transform that undoes d.
constexpr Dihedral inverse(Dihedral d) noexcept {
  if (d == Dihedral::Rot90) return Dihedral::Rot270;
  if (d == Dihedral::Rot270) return Dihedral::Rot90;
  return d;
}

/// Where cell p of an n x n grid goes under d.
constexpr Pos transform(Dihedral d, Pos p, int n) noexcept {
  const auto& t = detail::kDihedralMatrix[static_cast<std::size_t>(d)];
  const int m = n - 1;
  const int x = 2 * p.row - m, y = 2 * p.col - m;
  return {(t[0] * x + t[1] * y + m) / 2, (t[2] * x + t[3] * y + m) / 2};
}

/// The action that does on the transformed grid what `a` does on the original.
constexpr Action transform(Dihedral d, Action a) noexcept {
  if (a == Action::Stay) return a;
  const auto& t = detail::kDihedralMatrix[static_cast<std::size_t>(d)];
  const Pos v = delta(a);
  const int dr = t[0] * v.row + t[1] * v.col, dc = t[2] * v.row + t[3] * v.col;
  if (dr == -1) return Action::Up;
  if (dr == 1) return Action::Down;
  return dc == -1 ? Action::Left : Action::Right;
}

/// A cell token after transform d: the neighbour markers of Encoding::Marked name a direction,
/// which turns with the grid; every other token is unchanged.
constexpr std::uint8_t transform_cell_token(Dihedral d, int n, std::uint8_t v) noexcept {
  const int k = detail::neighbour_marker(n, v);
  if (k < 0) return v;
  return neighbour_token(n, transform(d, static_cast<Action>(k % 4)), k >= 4);
}

/// A 5-bit action mask (bit a = action a) with each action transformed by d.
constexpr std::uint8_t transform_mask(Dihedral d, std::uint8_t mask) noexcept {
  std::uint8_t out = static_cast<std::uint8_t>(mask & ~0x0Fu);  // Stay (and stray bits) fixed
  for (int a = 0; a < 4; ++a)
    if (mask & (1u << a))
      out = static_cast<std::uint8_t>(out | (1u << static_cast<int>(transform(d, static_cast<Action>(a)))));
  return out;
}

/// Writes the n*n cells of square map `src` transformed by d into `dst` (row-major, stride n,
/// 0 = free, 1 = blocked). Throws InvalidArgument for a non-square map.
inline void transform_grid(Dihedral d, const GridView& src, std::uint8_t* dst) {
  if (src.width != src.height)
    throw InvalidArgument("transform_grid: the map must be square, got " +
                          std::to_string(src.width) + "x" + std::to_string(src.height));
  const int n = src.width;
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      const Pos q = transform(d, Pos{r, c}, n);
      dst[q.row * n + q.col] = src.blocked({r, c}) ? 1 : 0;
    }
}

/// The square map `src` transformed by d, as a new Grid.
inline Grid transform_grid(Dihedral d, const GridView& src) {
  Grid out(src.width, src.height);
  transform_grid(d, src, out.data());
  return out;
}

/// Transforms an encoded state of an n x n map (tokens_per_state(n) tokens) by d: the cells
/// are permuted and the coordinate tokens mapped. `in` and `out` must not overlap.
inline void transform_tokens(Dihedral d, int n, const std::uint8_t* in, std::uint8_t* out) {
  NANONAV_ASSERT(in != out);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      const Pos q = transform(d, Pos{r, c}, n);
      out[q.row * n + q.col] = transform_cell_token(d, n, in[r * n + c]);
    }
  for (int k = 0; k < 2; ++k) {
    const std::uint8_t* src = in + n * n + 2 * k;
    const Pos p{src[0] - kTokenCoordOffset, src[1] - kTokenCoordOffset};
    const Pos q = transform(d, p, n);
    out[n * n + 2 * k + 0] = static_cast<std::uint8_t>(q.row + kTokenCoordOffset);
    out[n * n + 2 * k + 1] = static_cast<std::uint8_t>(q.col + kTokenCoordOffset);
  }
}

}  // namespace nanonav
