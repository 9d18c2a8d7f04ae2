#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <nanonav/astar.hpp>
#include <nanonav/encoding.hpp>
#include <nanonav/map_gen.hpp>

using namespace nanonav;

namespace {
constexpr Dihedral all_dihedral[] = {Dihedral::Identity, Dihedral::Rot90,    Dihedral::Rot180,
                                     Dihedral::Rot270,   Dihedral::FlipH,    Dihedral::FlipV,
                                     Dihedral::Transpose, Dihedral::AntiTranspose};
}  // namespace

TEST_CASE("tokens of a hand-made 3x3 state", "[encoding]") {
  // . # .
  // . . #
  // # . .     current (2, 1), goal (0, 2)
  Grid g(3, 3);
  g.set_blocked({0, 1}, true);
  g.set_blocked({1, 2}, true);
  g.set_blocked({2, 0}, true);
  const std::vector<std::uint8_t> want = {1, 2, 1, 1, 1, 2, 2, 1, 1, 2 + 3, 1 + 3, 0 + 3, 2 + 3};
  CHECK(encode_state(g, {2, 1}, {0, 2}) == want);
  CHECK(tokens_per_state(3) == 13);
  CHECK(vocab_size(3) == 6);

  // The incremental form only rewrites the current position.
  std::vector<std::uint8_t> buf = want;
  encode_current(3, {0, 0}, buf.data());
  std::vector<std::uint8_t> want2 = want;
  want2[9] = 3;
  want2[10] = 3;
  CHECK(buf == want2);
  CHECK(encode_state(g, {0, 0}, {0, 2}) == want2);
}

TEST_CASE("marked encoding: agent, goal and the agent's free neighbours are marked", "[encoding]") {
  // Same 3x3 map as above: current (2, 1), goal (0, 2).
  Grid g(3, 3);
  g.set_blocked({0, 1}, true);
  g.set_blocked({1, 2}, true);
  g.set_blocked({2, 0}, true);
  const std::uint8_t A = agent_token(3), G = goal_token(3), AG = agent_on_goal_token(3);
  CHECK(A == 6);
  CHECK(G == 7);
  CHECK(AG == 8);
  CHECK(neighbour_token(3, Action::Up, false) == 9);
  CHECK(neighbour_token(3, Action::Right, false) == 12);
  CHECK(neighbour_token(3, Action::Up, true) == 13);
  CHECK(neighbour_token(3, Action::Right, true) == 16);
  CHECK(vocab_size(3, Encoding::Marked) == 17);
  // Up (1,1) is free, Down is off the map, Left (2,0) blocked, Right (2,2) free.
  const std::vector<std::uint8_t> want = {1, 2, G, 1, 9, 2, 2, A, 12, 2 + 3, 1 + 3, 0 + 3, 2 + 3};
  CHECK(encode_state(g, {2, 1}, {0, 2}, Encoding::Marked) == want);

  // Moving the agent rewrites the markers around its old and new cells and the coordinates;
  // on an open map the goal becomes a neighbour marker, then the agent stands on it.
  std::vector<std::uint8_t> buf = want;
  for (Pos p : {Pos{2, 2}, Pos{1, 1}, Pos{0, 2}, Pos{1, 0}, Pos{0, 0}}) {
    encode_current(3, p, buf.data(), Encoding::Marked);
    CHECK(buf == encode_state(g, p, {0, 2}, Encoding::Marked));
  }
  const Grid open(3, 3);
  const Pos goal{1, 1};
  buf = encode_state(open, {0, 0}, goal, Encoding::Marked);
  CHECK(buf[1] == neighbour_token(3, Action::Right, false));
  CHECK(buf[3] == neighbour_token(3, Action::Down, false));
  for (Pos p : {Pos{0, 1}, Pos{1, 1}, Pos{2, 1}, Pos{2, 2}, Pos{0, 0}}) {
    encode_current(3, p, buf.data(), Encoding::Marked);
    CHECK(buf == encode_state(open, p, goal, Encoding::Marked));
  }
  CHECK(encode_state(open, {0, 1}, goal, Encoding::Marked)[4] == neighbour_token(3, Action::Down, true));
  CHECK(encode_state(open, goal, goal, Encoding::Marked)[4] == AG);
  for (unsigned v = 0; v < 20; ++v)
    CHECK(valid_cell_token(3, Encoding::Marked, v) == (v == 1 || v == 2 || (v >= 6 && v <= 16)));
  CHECK_FALSE(valid_cell_token(3, Encoding::Seed, A));
  // Neighbour markers turn with the grid: Up under a clockwise quarter turn is Right.
  CHECK(transform_cell_token(Dihedral::Rot90, 3, 9) == 12);
  CHECK(transform_cell_token(Dihedral::Rot90, 3, 13) == 16);
  CHECK(transform_cell_token(Dihedral::Rot90, 3, A) == A);

  // Markers would hide an obstacle, so agent or goal on one is refused; too large maps too.
  CHECK_THROWS_AS(encode_state(g, {0, 1}, {0, 2}, Encoding::Marked), InvalidArgument);
  CHECK_THROWS_AS(encode_state(g, {0, 0}, {2, 0}, Encoding::Marked), InvalidArgument);
  CHECK_THROWS_AS(encode_state(Grid(243, 243), {0, 0}, {1, 1}, Encoding::Marked), InvalidArgument);
  CHECK(encode_state(Grid(242, 242), {0, 0}, {5, 5}, Encoding::Marked)[0] == 245);
  CHECK(parse_encoding("marked") == Encoding::Marked);
  CHECK(parse_encoding("seed") == Encoding::Seed);
  CHECK_THROWS_AS(parse_encoding("onehot"), InvalidArgument);
}

TEST_CASE("encoding rejects maps and positions it cannot represent", "[encoding]") {
  CHECK_THROWS_AS(encode_state(Grid(4, 3), {0, 0}, {1, 1}), InvalidArgument);
  CHECK_THROWS_AS(encode_state(Grid(253, 253), {0, 0}, {1, 1}), InvalidArgument);
  CHECK_THROWS_AS(encode_state(Grid(1, 1), {0, 0}, {0, 0}), InvalidArgument);
  CHECK_THROWS_AS(encode_state(Grid(4, 4), {0, 4}, {1, 1}), InvalidArgument);
  CHECK_THROWS_AS(encode_state(Grid(4, 4), {0, 0}, {-1, 1}), InvalidArgument);
  // The largest map still fits a byte.
  const auto big = encode_state(Grid(252, 252), {251, 251}, {0, 0});
  CHECK(big.size() == static_cast<std::size_t>(252 * 252 + 4));
  CHECK(big[252 * 252] == 254);
}

TEST_CASE("dihedral transforms follow the documented table", "[encoding]") {
  // Where the top-left corner and the cell (0, 1) of a 4x4 grid go.
  const Pos corner{0, 0}, next{0, 1};
  CHECK(transform(Dihedral::Rot90, corner, 4) == Pos{0, 3});
  CHECK(transform(Dihedral::Rot90, next, 4) == Pos{1, 3});
  CHECK(transform(Dihedral::Rot180, next, 4) == Pos{3, 2});
  CHECK(transform(Dihedral::Rot270, next, 4) == Pos{2, 0});
  CHECK(transform(Dihedral::FlipH, next, 4) == Pos{0, 2});
  CHECK(transform(Dihedral::FlipV, next, 4) == Pos{3, 1});
  CHECK(transform(Dihedral::Transpose, next, 4) == Pos{1, 0});
  CHECK(transform(Dihedral::AntiTranspose, next, 4) == Pos{2, 3});
  // The seed's action table for the rotations.
  CHECK(transform(Dihedral::Rot90, Action::Up) == Action::Right);
  CHECK(transform(Dihedral::Rot90, Action::Right) == Action::Down);
  CHECK(transform(Dihedral::Rot90, Action::Down) == Action::Left);
  CHECK(transform(Dihedral::Rot90, Action::Left) == Action::Up);
  CHECK(transform(Dihedral::Rot180, Action::Up) == Action::Down);
  CHECK(transform(Dihedral::Rot180, Action::Left) == Action::Right);
  CHECK(transform(Dihedral::Rot270, Action::Up) == Action::Left);
  CHECK(transform(Dihedral::Rot270, Action::Left) == Action::Down);
  CHECK(transform(Dihedral::Rot270, Action::Down) == Action::Right);
  CHECK(transform(Dihedral::Rot270, Action::Right) == Action::Up);
  CHECK(transform(Dihedral::FlipH, Action::Left) == Action::Right);
  CHECK(transform(Dihedral::FlipH, Action::Up) == Action::Up);
  CHECK(transform(Dihedral::FlipV, Action::Up) == Action::Down);
  CHECK(transform(Dihedral::FlipV, Action::Left) == Action::Left);
  for (Dihedral d : all_dihedral) CHECK(transform(d, Action::Stay) == Action::Stay);
}

TEST_CASE("actions and positions transform consistently", "[encoding]") {
  // Moving then transforming = transforming then taking the transformed action.
  for (int n : {2, 3, 5, 8})
    for (Dihedral d : all_dihedral)
      for (int r = 1; r + 1 < n; ++r)
        for (int c = 1; c + 1 < n; ++c)
          for (int a = 0; a < kNumActions; ++a) {
            const Pos p{r, c};
            const auto act = static_cast<Action>(a);
            CHECK(transform(d, step(p, act), n) == step(transform(d, p, n), transform(d, act)));
          }
}

TEST_CASE("the 8 transforms form a group with the documented inverses", "[encoding]") {
  const int n = 5;
  for (Dihedral a : all_dihedral) {
    CHECK(compose(a, inverse(a)) == Dihedral::Identity);
    CHECK(compose(inverse(a), a) == Dihedral::Identity);
    for (Dihedral b : all_dihedral)
      for (int r = 0; r < n; ++r)
        for (int c = 0; c < n; ++c) {
          const Pos p{r, c};
          CHECK(transform(compose(a, b), p, n) == transform(a, transform(b, p, n), n));
        }
  }
  // Distinct transforms are distinct maps (on a non-symmetric probe).
  for (Dihedral a : all_dihedral)
    for (Dihedral b : all_dihedral)
      if (a != b) {
        const bool same = transform(a, Pos{0, 1}, n) == transform(b, Pos{0, 1}, n) &&
                          transform(a, Pos{0, 0}, n) == transform(b, Pos{0, 0}, n);
        CHECK_FALSE(same);
      }
  CHECK(compose(Dihedral::Rot90, Dihedral::Rot90) == Dihedral::Rot180);
  CHECK(compose(Dihedral::Rot90, Dihedral::FlipV) == Dihedral::Transpose);
  CHECK(compose(Dihedral::Rot90, Dihedral::FlipH) == Dihedral::AntiTranspose);
}

TEST_CASE("A* costs, optimal actions and masks are invariant under the 8 transforms",
          "[encoding]") {
  std::vector<std::int32_t> dist, tdist;
  AStar ws;
  for (int n : {5, 8, 11}) {
    for (std::uint64_t i = 0; i < 25; ++i) {
      const Problem p = random_problem(n, n, 0.3, 1234, i);
      goal_distances(p.grid, p.goal, dist);
      const double cost4 = ws.search(p.grid, p.start, p.goal, Connectivity::Four).cost;
      const double cost8 = ws.search(p.grid, p.start, p.goal, Connectivity::Eight).cost;
      const SearchResult path = ws.search(p.grid, p.start, p.goal, Connectivity::Four);
      for (Dihedral d : all_dihedral) {
        const Grid tg = transform_grid(d, p.grid);
        CHECK(tg.count_blocked() == p.grid.count_blocked());
        const Pos ts = transform(d, p.start, n), tgoal = transform(d, p.goal, n);
        CHECK(tg.is_free(ts));
        CHECK(tg.is_free(tgoal));
        CHECK(ws.search(tg, ts, tgoal, Connectivity::Four).cost == cost4);
        CHECK(std::abs(ws.search(tg, ts, tgoal, Connectivity::Eight).cost - cost8) < 1e-9);
        goal_distances(tg, tgoal, tdist);
        for (int r = 0; r < n; ++r)
          for (int c = 0; c < n; ++c) {
            const Pos q{r, c};
            const Pos tq = transform(d, q, n);
            CHECK(tg.blocked(tq) == p.grid.blocked(q));
            const std::uint8_t m = optimal_action_mask(p.grid, dist, q);
            CHECK(transform_mask(d, m) == optimal_action_mask(tg, tdist, tq));
          }
        // Each action of the original A* path, transformed, is optimal on the new map.
        for (std::size_t k = 0; k + 1 < path.path.size(); ++k) {
          const Action a = action_between(path.path[k], path.path[k + 1]);
          const Pos tq = transform(d, path.path[k], n);
          CHECK((optimal_action_mask(tg, tdist, tq) >> static_cast<int>(transform(d, a)) & 1));
        }
        // Token transform = encoding the transformed state, in both encodings.
        for (Encoding e : {Encoding::Seed, Encoding::Marked}) {
          const auto tok = encode_state(p.grid, p.start, p.goal, e);
          std::vector<std::uint8_t> out(tok.size());
          transform_tokens(d, n, tok.data(), out.data());
          CHECK(out == encode_state(tg, ts, tgoal, e));
        }
      }
    }
  }
}

TEST_CASE("mask transform permutes the four move bits and keeps Stay", "[encoding]") {
  for (Dihedral d : all_dihedral) {
    CHECK(transform_mask(d, 0) == 0);
    CHECK(transform_mask(d, 0x10) == 0x10);
    CHECK(transform_mask(d, 0x0F) == 0x0F);
    for (int a = 0; a < 4; ++a)
      CHECK(transform_mask(d, static_cast<std::uint8_t>(1u << a)) ==
            (1u << static_cast<int>(transform(d, static_cast<Action>(a)))));
  }
  CHECK(transform_grid(Dihedral::Rot90, Grid(3, 3)) == Grid(3, 3));
  CHECK_THROWS_AS(transform_grid(Dihedral::Rot90, Grid(3, 2)), InvalidArgument);
}
