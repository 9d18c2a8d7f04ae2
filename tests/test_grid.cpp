#include <catch2/catch.hpp>

#include <nanonav/grid.hpp>

using namespace nanonav;

TEST_CASE("actions move by their documented deltas", "[grid]") {
  const Pos p{3, 5};
  CHECK(step(p, Action::Up) == Pos{2, 5});
  CHECK(step(p, Action::Down) == Pos{4, 5});
  CHECK(step(p, Action::Left) == Pos{3, 4});
  CHECK(step(p, Action::Right) == Pos{3, 6});
  CHECK(step(p, Action::Stay) == p);
  for (int a = 0; a < kNumActions; ++a) {
    const auto act = static_cast<Action>(a);
    CHECK(action_between(p, step(p, act)) == act);
  }
}

TEST_CASE("Grid stores blocked cells row-major", "[grid]") {
  Grid g(4, 3);
  CHECK(g.width() == 4);
  CHECK(g.height() == 3);
  CHECK(g.count_blocked() == 0);
  g.set_blocked({2, 1}, true);
  CHECK(g.blocked({2, 1}));
  CHECK(g.data()[2 * 4 + 1] == 1);
  CHECK_FALSE(g.is_free({2, 1}));
  CHECK_FALSE(g.is_free({-1, 0}));
  CHECK_FALSE(g.is_free({0, 4}));
  CHECK(g.is_free({0, 3}));
  CHECK(g.pos(g.index({2, 1})) == Pos{2, 1});
  CHECK_THROWS_AS(Grid(0, 3), InvalidArgument);
}

TEST_CASE("GridView reads a strided costmap with a lethal threshold, without a copy", "[grid]") {
  // A 3x2 Nav2-style costmap in a buffer with stride 5 (padding bytes hold garbage).
  const std::uint8_t buf[] = {0, 100, 254, 77, 77,  //
                              253, 252, 255, 77, 77};
  const GridView v(buf, 3, 2, 5, 253);
  CHECK_FALSE(v.blocked({0, 0}));
  CHECK_FALSE(v.blocked({0, 1}));
  CHECK(v.blocked({0, 2}));
  CHECK(v.blocked({1, 0}));
  CHECK_FALSE(v.blocked({1, 1}));
  CHECK(v.blocked({1, 2}));
  CHECK(v.data == buf);
  const Grid g = Grid::from_view(v);
  CHECK(g.count_blocked() == 3);
  CHECK(g.blocked({1, 2}));
  CHECK_THROWS_AS(GridView(buf, 3, 2, 2), InvalidArgument);
  CHECK_THROWS_AS(GridView(nullptr, 3, 2, 3), InvalidArgument);
}
