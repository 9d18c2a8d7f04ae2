#pragma once
/// Positions, actions and grids.
///
/// Convention (the one place it is written down): a position is (row, col); row 0 is the top
/// row and rows grow downwards, col 0 is the left column and columns grow rightwards, like an
/// image and like Moving AI files (their x is our col, their y our row). "Up" therefore
/// decreases the row. Cell (row, col) of a buffer lives at data[row * stride + col].
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "detail/assert.hpp"
#include "errors.hpp"

namespace nanonav {

/// A cell coordinate: row (downwards) and column (rightwards).
struct Pos {
  int row = 0;
  int col = 0;
  friend constexpr bool operator==(Pos a, Pos b) noexcept { return a.row == b.row && a.col == b.col; }
  friend constexpr bool operator!=(Pos a, Pos b) noexcept { return !(a == b); }
};

/// The five actions of the navigation policy, numbered as the seed's labels.
enum class Action : std::uint8_t { Up = 0, Down = 1, Left = 2, Right = 3, Stay = 4 };
inline constexpr int kNumActions = 5;

/// The (row, col) change that an action makes.
constexpr Pos delta(Action a) noexcept {
  switch (a) {
    case Action::Up: return {-1, 0};
    case Action::Down: return {1, 0};
    case Action::Left: return {0, -1};
    case Action::Right: return {0, 1};
    case Action::Stay: break;
  }
  return {0, 0};
}

/// Where an action leads from p (no bounds check).
constexpr Pos step(Pos p, Action a) noexcept {
  const Pos d = delta(a);
  return {p.row + d.row, p.col + d.col};
}

inline const char* to_string(Action a) noexcept {
  switch (a) {
    case Action::Up: return "UP";
    case Action::Down: return "DOWN";
    case Action::Left: return "LEFT";
    case Action::Right: return "RIGHT";
    case Action::Stay: return "STAY";
  }
  return "?";
}

/// The action that moves from a to its 4-neighbour (or equal cell) b.
inline Action action_between(Pos a, Pos b) {
  const int dr = b.row - a.row, dc = b.col - a.col;
  if (dr == -1 && dc == 0) return Action::Up;
  if (dr == 1 && dc == 0) return Action::Down;
  if (dr == 0 && dc == -1) return Action::Left;
  if (dr == 0 && dc == 1) return Action::Right;
  NANONAV_ASSERT(dr == 0 && dc == 0);
  return Action::Stay;
}

/// A non-owning view of a robot's occupancy buffer: no copy is made. A cell is blocked when
/// its value is >= `lethal` (e.g. 253 for a Nav2 costmap, whose inscribed/lethal/unknown
/// values are 253/254/255; 1 for nanonav's own 0 = free / 1 = blocked grids).
struct GridView {
  const std::uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  std::ptrdiff_t stride = 0;  ///< bytes from one row to the next (>= width)
  std::uint8_t lethal = 1;

  GridView() = default;
  GridView(const std::uint8_t* d, int w, int h, std::ptrdiff_t s, std::uint8_t lethal_value = 1)
      : data(d), width(w), height(h), stride(s), lethal(lethal_value) {
    if (w <= 0 || h <= 0 || s < w || d == nullptr)
      throw InvalidArgument("GridView: need data != null, width > 0, height > 0, stride >= width");
  }

  constexpr bool in_bounds(Pos p) const noexcept {
    return p.row >= 0 && p.col >= 0 && p.row < height && p.col < width;
  }
  /// True when p is on the map and blocked. Off-map positions are not "blocked" but not free.
  bool blocked(Pos p) const noexcept {
    NANONAV_ASSERT(in_bounds(p));
    return data[p.row * stride + p.col] >= lethal;
  }
  /// True when p is on the map and free.
  bool is_free(Pos p) const noexcept { return in_bounds(p) && data[p.row * stride + p.col] < lethal; }
  int cells() const noexcept { return width * height; }
};

/// An owning occupancy grid: one byte a cell, 0 = free, 1 = blocked, rows contiguous.
class Grid {
 public:
  Grid() = default;
  /// An all-free grid of the given size.
  Grid(int width, int height) : width_(width), height_(height) {
    if (width <= 0 || height <= 0)
      throw InvalidArgument("Grid: width and height must be positive, got " +
                            std::to_string(width) + "x" + std::to_string(height));
    cells_.assign(static_cast<std::size_t>(width) * static_cast<std::size_t>(height), 0);
  }
  /// A copy of any view, normalised to 0/1.
  static Grid from_view(const GridView& v) {
    Grid g(v.width, v.height);
    for (int r = 0; r < v.height; ++r)
      for (int c = 0; c < v.width; ++c) g.set_blocked({r, c}, v.blocked({r, c}));
    return g;
  }

  int width() const noexcept { return width_; }
  int height() const noexcept { return height_; }
  int cells() const noexcept { return width_ * height_; }
  bool empty() const noexcept { return cells_.empty(); }

  constexpr bool in_bounds(Pos p) const noexcept {
    return p.row >= 0 && p.col >= 0 && p.row < height_ && p.col < width_;
  }
  bool blocked(Pos p) const noexcept {
    NANONAV_ASSERT(in_bounds(p));
    return cells_[index(p)] != 0;
  }
  bool is_free(Pos p) const noexcept { return in_bounds(p) && cells_[index(p)] == 0; }
  void set_blocked(Pos p, bool b) noexcept {
    NANONAV_ASSERT(in_bounds(p));
    cells_[index(p)] = b ? 1 : 0;
  }
  std::size_t index(Pos p) const noexcept {
    return static_cast<std::size_t>(p.row) * static_cast<std::size_t>(width_) +
           static_cast<std::size_t>(p.col);
  }
  Pos pos(std::size_t index) const noexcept {
    return {static_cast<int>(index / static_cast<std::size_t>(width_)),
            static_cast<int>(index % static_cast<std::size_t>(width_))};
  }
  int count_blocked() const noexcept {
    int n = 0;
    for (auto v : cells_) n += v != 0;
    return n;
  }

  const std::uint8_t* data() const noexcept { return cells_.data(); }
  std::uint8_t* data() noexcept { return cells_.data(); }
  GridView view() const { return GridView(cells_.data(), width_, height_, width_, 1); }
  operator GridView() const { return view(); }  // NOLINT: a Grid is usable wherever a view is

  friend bool operator==(const Grid& a, const Grid& b) noexcept {
    return a.width_ == b.width_ && a.height_ == b.height_ && a.cells_ == b.cells_;
  }
  friend bool operator!=(const Grid& a, const Grid& b) noexcept { return !(a == b); }

 private:
  int width_ = 0;
  int height_ = 0;
  std::vector<std::uint8_t> cells_;
};

}  // namespace nanonav
