#include <catch2/catch.hpp>

#include <nanonav/image.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>

using namespace nanonav;

namespace {
bool same(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }
}  // namespace

TEST_CASE("Image draws rectangles, discs and clips at the border", "[image]") {
  Image img(10, 6, Rgb{1, 2, 3});
  CHECK(same(img.get(9, 5), Rgb{1, 2, 3}));
  img.fill_rect(8, 4, 10, 10, Rgb{9, 9, 9});  // partly outside: clipped, no crash
  CHECK(same(img.get(9, 5), Rgb{9, 9, 9}));
  CHECK(same(img.get(7, 5), Rgb{1, 2, 3}));
  img.fill_disc(2, 2, 1.2, Rgb{200, 0, 0});
  CHECK(same(img.get(1, 1), Rgb{200, 0, 0}));
  CHECK(same(img.get(5, 1), Rgb{1, 2, 3}));
  CHECK_THROWS_AS(Image(0, 5), InvalidArgument);
}

TEST_CASE("GridPanel colours cells and draws a path between cell centres", "[image]") {
  Grid g(3, 2);
  g.set_blocked({1, 1}, true);
  GridPanel panel(g, 10);
  const Image& im = panel.image();
  CHECK(im.width() == 31);
  CHECK(im.height() == 21);
  CHECK(same(im.get(15, 15), palette::kBlocked));  // centre of cell (1, 1)
  CHECK(same(im.get(5, 5), palette::kFree));       // centre of cell (0, 0)
  CHECK(same(im.get(0, 0), palette::kGridLine));
  panel.draw_path({{0, 0}, {0, 1}, {0, 2}}, palette::kAStar);
  CHECK(same(panel.image().get(15, 5), palette::kAStar));  // between centres on row 0
  CHECK(same(panel.image().get(15, 15), palette::kBlocked));
}

TEST_CASE("PNG files are written whole, with the PNG signature and size", "[image]") {
  Grid g(4, 4);
  GridPanel panel(g, 8);
  panel.mark_cell({0, 0}, palette::kStart);
  const Image both = side_by_side({panel.image(), panel.image()}, 5);
  CHECK(both.width() == 2 * 33 + 5);
  const std::string path = std::string(NANONAV_TEST_TMPDIR) + "/test_image.png";
  both.save_png(path);
  std::ifstream in(path, std::ios::binary);
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), {});
  REQUIRE(bytes.size() > 24);
  const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  CHECK(std::equal(sig, sig + 8, bytes.begin()));
  // IHDR: width and height big-endian at bytes 16..23.
  const auto be32 = [&](int o) {
    return (bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3];
  };
  CHECK(be32(16) == both.width());
  CHECK(be32(20) == both.height());
  std::remove(path.c_str());
  CHECK_THROWS_AS(both.save_png("/nonexistent-dir/x.png"), IoError);
}

TEST_CASE("ASCII rendering marks path, start and goal", "[image]") {
  Grid g(3, 2);
  g.set_blocked({1, 0}, true);
  const std::string s = ascii_grid(g, {{0, 0}, {0, 1}, {1, 1}}, {0, 0}, {1, 1});
  CHECK(s == "S * .\n# G .\n");
  const std::string both = ascii_side_by_side("A", "ab\ncd\n", "B", "ef\ngh\n", 2);
  CHECK(both == "A   B\nab  ef\ncd  gh\n");
}

TEST_CASE("line_chart draws each series in its colour, and text", "[image]") {
  const Rgb red{220, 30, 30}, blue{30, 30, 220};
  const Image chart = line_chart("loss", {{"train", {1.0, 0.5, 0.25}, red}, {"val", {1.2, 0.9, 0.8}, blue}});
  int reds = 0, blues = 0, dark = 0;
  for (int y = 0; y < chart.height(); ++y)
    for (int x = 0; x < chart.width(); ++x) {
      const Rgb c = chart.get(x, y);
      reds += same(c, red);
      blues += same(c, blue);
      dark += same(c, Rgb{20, 20, 20});
    }
  CHECK(reds > 100);
  CHECK(blues > 100);
  CHECK(dark > 20);  // the title's glyphs
  // The first point of "train" (the largest y of that series) is drawn above its last point.
  int first_y = -1, last_y = -1;
  for (int y = 0; y < chart.height() && first_y < 0; ++y)
    if (same(chart.get(64, y), red)) first_y = y;
  for (int y = 0; y < chart.height() && last_y < 0; ++y)
    if (same(chart.get(chart.width() - 17, y), red)) last_y = y;
  CHECK(first_y >= 0);
  CHECK(last_y > first_y);
}
