#pragma once
/// Pictures: an RGB canvas, grid panels with paths and markers, side-by-side panels, PNG output
/// through stb_image_write (Debian: libstb-dev), and ASCII renderings for terminals.
///
/// Not included by nanonav.hpp, because it needs stb: include <nanonav/image.hpp> yourself.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "detail/atomic_file.hpp"
#include "errors.hpp"
#include "grid.hpp"

// stb_image_write compiled into every translation unit that includes this header, with
// internal linkage, so a header-only library needs no .c file and no link step.
#ifndef NANONAV_STBIW_INCLUDED
#define NANONAV_STBIW_INCLUDED
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop
#endif

namespace nanonav {

/// A colour.
struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

/// The colours the examples use (one palette so every picture reads the same).
namespace palette {
inline constexpr Rgb kFree{245, 245, 245};
inline constexpr Rgb kBlocked{40, 40, 48};
inline constexpr Rgb kGridLine{200, 200, 205};
inline constexpr Rgb kStart{46, 160, 67};
inline constexpr Rgb kGoal{210, 50, 45};
inline constexpr Rgb kAStar{30, 110, 220};
inline constexpr Rgb kModel{240, 140, 20};
inline constexpr Rgb kExpanded{190, 215, 250};
inline constexpr Rgb kError{200, 0, 200};
inline constexpr Rgb kBackground{255, 255, 255};
}  // namespace palette

/// An 8-bit RGB canvas, rows top to bottom.
class Image {
 public:
  Image() = default;
  Image(int width, int height, Rgb fill = palette::kBackground) : width_(width), height_(height) {
    if (width <= 0 || height <= 0 || width > 32768 || height > 32768)
      throw InvalidArgument("Image: size must be in 1..32768, got " + std::to_string(width) + "x" +
                            std::to_string(height));
    pixels_.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
    fill_rect(0, 0, width, height, fill);
  }
  int width() const noexcept { return width_; }
  int height() const noexcept { return height_; }
  const std::uint8_t* data() const noexcept { return pixels_.data(); }

  /// Sets one pixel; pixels outside the canvas are ignored (clipping).
  void set(int x, int y, Rgb c) noexcept {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::uint8_t* p = &pixels_[(static_cast<std::size_t>(y) * width_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  Rgb get(int x, int y) const noexcept {
    NANONAV_ASSERT(x >= 0 && y >= 0 && x < width_ && y < height_);
    const std::uint8_t* p = &pixels_[(static_cast<std::size_t>(y) * width_ + x) * 3];
    return {p[0], p[1], p[2]};
  }
  /// Fills [x, x+w) x [y, y+h), clipped to the canvas.
  void fill_rect(int x, int y, int w, int h, Rgb c) noexcept {
    for (int yy = std::max(0, y); yy < std::min(height_, y + h); ++yy)
      for (int xx = std::max(0, x); xx < std::min(width_, x + w); ++xx) set(xx, yy, c);
  }
  /// A filled disc of radius r centred on (cx, cy).
  void fill_disc(double cx, double cy, double r, Rgb c) noexcept {
    for (int y = static_cast<int>(cy - r) - 1; y <= static_cast<int>(cy + r) + 1; ++y)
      for (int x = static_cast<int>(cx - r) - 1; x <= static_cast<int>(cx + r) + 1; ++x) {
        const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        if (dx * dx + dy * dy <= r * r) set(x, y, c);
      }
  }
  /// A line of the given thickness from (x0, y0) to (x1, y1) (discs stamped along it).
  void draw_line(double x0, double y0, double x1, double y1, double thickness, Rgb c) noexcept {
    const double len = std::hypot(x1 - x0, y1 - y0);
    const int steps = std::max(1, static_cast<int>(std::ceil(len * 2)));
    for (int i = 0; i <= steps; ++i) {
      const double t = static_cast<double>(i) / steps;
      fill_disc(x0 + t * (x1 - x0), y0 + t * (y1 - y0), thickness / 2, c);
    }
  }
  /// Copies `src` into this canvas with its top-left corner at (x, y).
  void blit(const Image& src, int x, int y) noexcept {
    for (int yy = 0; yy < src.height(); ++yy)
      for (int xx = 0; xx < src.width(); ++xx) set(x + xx, y + yy, src.get(xx, yy));
  }

  /// The PNG encoding of the canvas.
  std::vector<std::uint8_t> encode_png() const {
    std::vector<std::uint8_t> out;
    const auto sink = [](void* ctx, void* data, int size) {
      auto* v = static_cast<std::vector<std::uint8_t>*>(ctx);
      const auto* bytes = static_cast<const std::uint8_t*>(data);
      v->insert(v->end(), bytes, bytes + size);
    };
    if (!stbi_write_png_to_func(sink, &out, width_, height_, 3, pixels_.data(), width_ * 3))
      throw Error("Image: PNG encoding failed");
    return out;
  }
  /// Writes a PNG file atomically (temp file + rename): a crash never leaves half a picture.
  void save_png(const std::string& path) const {
    const std::vector<std::uint8_t> png = encode_png();
    detail::write_file_atomically(path, png.data(), png.size());
  }

 private:
  int width_ = 0, height_ = 0;
  std::vector<std::uint8_t> pixels_;
};

/// One grid panel: `scale` pixels per cell, a 1-pixel grid line, and helpers to draw on it in
/// cell coordinates.
class GridPanel {
 public:
  GridPanel(const GridView& g, int scale = 32) : grid_(g), scale_(scale) {
    if (scale < 2 || scale > 256) throw InvalidArgument("GridPanel: scale must be in 2..256");
    image_ = Image(g.width * scale + 1, g.height * scale + 1, palette::kGridLine);
    for (int r = 0; r < g.height; ++r)
      for (int c = 0; c < g.width; ++c)
        fill_cell({r, c}, g.blocked({r, c}) ? palette::kBlocked : palette::kFree);
  }
  /// Colours a cell (inside its grid lines).
  void fill_cell(Pos p, Rgb c) noexcept {
    if (scale_ <= 3) {
      image_.fill_rect(p.col * scale_, p.row * scale_, scale_, scale_, c);
    } else {
      image_.fill_rect(p.col * scale_ + 1, p.row * scale_ + 1, scale_ - 1, scale_ - 1, c);
    }
  }
  /// A round marker in the middle of a cell (e.g. start, goal).
  void mark_cell(Pos p, Rgb c, double size = 0.7) noexcept {
    image_.fill_disc(cx(p), cy(p), size * scale_ / 2, c);
  }
  /// A cross over a cell (e.g. where a policy went wrong).
  void cross_cell(Pos p, Rgb c) noexcept {
    const double h = scale_ * 0.35, t = std::max(2.0, scale_ / 8.0);
    image_.draw_line(cx(p) - h, cy(p) - h, cx(p) + h, cy(p) + h, t, c);
    image_.draw_line(cx(p) - h, cy(p) + h, cx(p) + h, cy(p) - h, t, c);
  }
  /// A polyline through the centres of the path's cells. `offset` (in cells, e.g. ±0.12)
  /// shifts it so that two paths over the same cells stay visible.
  void draw_path(const std::vector<Pos>& path, Rgb c, double offset = 0.0) noexcept {
    const double t = std::max(2.0, scale_ / 6.0), o = offset * scale_;
    for (std::size_t i = 0; i + 1 < path.size(); ++i)
      image_.draw_line(cx(path[i]) + o, cy(path[i]) + o, cx(path[i + 1]) + o, cy(path[i + 1]) + o,
                       t, c);
  }
  const Image& image() const noexcept { return image_; }
  Image& image() noexcept { return image_; }

 private:
  double cx(Pos p) const noexcept { return p.col * scale_ + scale_ / 2.0 + 0.5; }
  double cy(Pos p) const noexcept { return p.row * scale_ + scale_ / 2.0 + 0.5; }

  GridView grid_;
  int scale_;
  Image image_;
};

/// Panels placed left to right with `gap` pixels between them, tops aligned.
inline Image side_by_side(const std::vector<Image>& panels, int gap = 16,
                          Rgb background = palette::kBackground) {
  if (panels.empty()) throw InvalidArgument("side_by_side: no panels");
  int w = gap * (static_cast<int>(panels.size()) - 1), h = 0;
  for (const Image& p : panels) {
    w += p.width();
    h = std::max(h, p.height());
  }
  Image out(w, h, background);
  int x = 0;
  for (const Image& p : panels) {
    out.blit(p, x, 0);
    x += p.width() + gap;
  }
  return out;
}

/// Draws `text` with its top-left corner at (x, y), `scale` pixels per font pixel (stb's
/// easy_font: ASCII only, about 6 x 7 font pixels a character).
inline void draw_text(Image& img, int x, int y, const std::string& text, Rgb c, int scale = 1) {
  std::vector<char> buf(text.size() * 300 + 64);
  std::string copy = text;
  const int quads = stb_easy_font_print(0, 0, copy.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
  for (int q = 0; q < quads; ++q) {
    const float* v = reinterpret_cast<const float*>(buf.data() + q * 64);  // 4 vertices of 16 bytes
    const float x0 = v[0], y0 = v[1], x1 = v[8], y1 = v[9];
    img.fill_rect(x + static_cast<int>(x0) * scale, y + static_cast<int>(y0) * scale,
                  static_cast<int>(x1 - x0) * scale, static_cast<int>(y1 - y0) * scale, c);
  }
}

/// One curve of a line chart.
struct Series {
  std::string label;
  std::vector<double> y;  ///< y[i] is plotted at x = i + 1
  Rgb color;
};

/// A line chart of one or more series against 1..n, with a title, y gridlines labelled with
/// their values, and a legend. Used for training curves.
inline Image line_chart(const std::string& title, const std::vector<Series>& series,
                        int width = 520, int height = 340) {
  Image img(width, height, palette::kBackground);
  const int left = 64, right = 16, top = 34, bottom = 40;
  const int pw = width - left - right, ph = height - top - bottom;
  if (pw < 20 || ph < 20) throw InvalidArgument("line_chart: too small");
  double lo = 1e300, hi = -1e300;
  std::size_t n = 0;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), n = std::max(n, s.y.size());
  draw_text(img, left, 8, title, Rgb{20, 20, 20}, 2);
  img.fill_rect(left, top, 1, ph + 1, Rgb{60, 60, 60});
  img.fill_rect(left, top + ph, pw + 1, 1, Rgb{60, 60, 60});
  if (n == 0) return img;
  if (hi - lo < 1e-12) hi = lo + 1.0;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const auto X = [&](std::size_t i) { return left + (n <= 1 ? pw / 2.0 : pw * static_cast<double>(i) / (n - 1)); };
  const auto Y = [&](double v) { return top + ph * (hi - v) / (hi - lo); };
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4.0;
    const int yy = static_cast<int>(Y(v));
    if (k > 0) img.fill_rect(left + 1, yy, pw, 1, Rgb{225, 225, 230});
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    draw_text(img, 4, yy - 3, buf, Rgb{60, 60, 60}, 1);
  }
  char xl[48];
  std::snprintf(xl, sizeof xl, "epoch 1 .. %zu", n);
  draw_text(img, left + pw / 2 - 30, top + ph + 8, xl, Rgb{60, 60, 60}, 1);
  int lx = left + 8;
  for (const Series& s : series) {
    for (std::size_t i = 0; i + 1 < s.y.size(); ++i)
      if (std::isfinite(s.y[i]) && std::isfinite(s.y[i + 1]))
        img.draw_line(X(i), Y(s.y[i]), X(i + 1), Y(s.y[i + 1]), 2.0, s.color);
    if (s.y.size() == 1 && std::isfinite(s.y[0])) img.fill_disc(X(0), Y(s.y[0]), 3, s.color);
    img.fill_rect(lx, height - 16, 14, 6, s.color);
    draw_text(img, lx + 18, height - 17, s.label, Rgb{40, 40, 40}, 1);
    lx += 30 + 6 * static_cast<int>(s.label.size());
  }
  return img;
}

/// ASCII rendering: '#' blocked, '.' free, '*' path, 'S' start, 'G' goal, 'x' marked cells.
inline std::string ascii_grid(const GridView& g, const std::vector<Pos>& path, Pos start, Pos goal,
                              const std::vector<Pos>& marks = {}) {
  std::vector<char> cells(static_cast<std::size_t>(g.width * g.height));
  for (int r = 0; r < g.height; ++r)
    for (int c = 0; c < g.width; ++c) cells[r * g.width + c] = g.blocked({r, c}) ? '#' : '.';
  const auto put = [&](Pos p, char ch) {
    if (g.in_bounds(p)) cells[p.row * g.width + p.col] = ch;
  };
  for (Pos p : path) put(p, '*');
  for (Pos p : marks) put(p, 'x');
  put(start, 'S');
  put(goal, 'G');
  std::string out;
  for (int r = 0; r < g.height; ++r) {
    for (int c = 0; c < g.width; ++c) {
      out += cells[r * g.width + c];
      if (c + 1 < g.width) out += ' ';
    }
    out += '\n';
  }
  return out;
}

/// Two ASCII panels side by side under their titles.
inline std::string ascii_side_by_side(const std::string& left_title, const std::string& left,
                                      const std::string& right_title, const std::string& right,
                                      int gap = 4) {
  const auto lines = [](const std::string& s) {
    std::vector<std::string> v;
    std::size_t b = 0;
    while (b < s.size()) {
      std::size_t e = s.find('\n', b);
      if (e == std::string::npos) e = s.size();
      v.push_back(s.substr(b, e - b));
      b = e + 1;
    }
    return v;
  };
  std::vector<std::string> l = lines(left), r = lines(right);
  l.insert(l.begin(), left_title);
  r.insert(r.begin(), right_title);
  std::size_t width = 0;
  for (const auto& s : l) width = std::max(width, s.size());
  std::string out;
  for (std::size_t i = 0; i < std::max(l.size(), r.size()); ++i) {
    std::string a = i < l.size() ? l[i] : std::string();
    a.resize(width + static_cast<std::size_t>(gap), ' ');
    out += a + (i < r.size() ? r[i] : std::string()) + "\n";
  }
  return out;
}

}  // namespace nanonav
