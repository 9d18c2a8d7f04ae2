#include <catch2/catch.hpp>

#include <nanonav/rollout.hpp>

using namespace nanonav;

namespace {
std::vector<Problem> problems(int count, int n, double density, std::uint64_t seed) {
  std::vector<Problem> v;
  for (int i = 0; i < count; ++i) v.push_back(random_problem(n, n, density, seed, i));
  return v;
}
}  // namespace

TEST_CASE("the A* expert succeeds on every episode with ratio 1", "[rollout]") {
  const auto ps = problems(200, 8, 0.25, 7);
  std::vector<EpisodeResult> res;
  const auto rep = rollout(
      [](const std::uint8_t* t, int b, std::uint8_t* a) { expert_actions(t, b, 8, a); }, ps, &res);
  CHECK(rep.episodes == 200);
  CHECK(rep.successes == 200);
  CHECK(rep.collisions == 0);
  CHECK(rep.timeouts == 0);
  CHECK(rep.mean_ratio == 1.0);
  CHECK(rep.optimal_share == 1.0);
  CHECK(rep.step_accuracy == 1.0);
  for (std::size_t e = 0; e < ps.size(); ++e) {
    CHECK(res[e].path.front() == ps[e].start);
    CHECK(res[e].path.back() == ps[e].goal);
    CHECK(res[e].steps == astar(ps[e].grid, ps[e].start, ps[e].goal).cost);
  }
}

TEST_CASE("a policy that stays put times out; one that walks into walls collides", "[rollout]") {
  const auto ps = problems(50, 6, 0.2, 11);
  const auto stay = rollout(
      [](const std::uint8_t*, int b, std::uint8_t* a) { std::fill(a, a + b, 4); }, ps);
  CHECK(stay.timeouts == 50);
  CHECK(stay.successes == 0);
  CHECK(stay.step_accuracy == 0.0);
  // Always Up: every episode either reaches the goal by luck (goal straight above, no wall
  // between) or hits an obstacle or the top border: never a timeout.
  std::vector<EpisodeResult> res;
  const auto up = rollout(
      [](const std::uint8_t*, int b, std::uint8_t* a) { std::fill(a, a + b, 0); }, ps, &res);
  CHECK(up.timeouts == 0);
  CHECK(up.collisions + up.successes == 50);
  CHECK(up.collisions > 0);
  for (std::size_t e = 0; e < ps.size(); ++e)
    if (res[e].outcome == Outcome::Success) CHECK(ps[e].goal.col == ps[e].start.col);
}

TEST_CASE("the step limit and a mixed policy are accounted for", "[rollout]") {
  const auto ps = problems(100, 8, 0.2, 3);
  // Expert on even steps, Stay on odd ones.
  int call = 0;
  RolloutOptions opt;
  opt.stop_on_revisit = false;
  const auto rep = rollout(
      [&](const std::uint8_t* t, int b, std::uint8_t* a) {
        if (call++ % 2 == 0) {
          expert_actions(t, b, 8, a);
        } else {
          std::fill(a, a + b, 4);
        }
      },
      ps, nullptr, opt);
  CHECK(rep.successes == 100);        // Stay wastes a step but does not end the episode
  CHECK(rep.mean_ratio > 1.5);        // about twice the optimal number of steps
  // Only one-move problems finish before the first Stay: they alone are optimal.
  int one_move = 0;
  for (const auto& p : ps) one_move += astar(p.grid, p.start, p.goal).cost == 1.0;
  CHECK(rep.optimal_share == Approx(one_move / 100.0));
  CHECK(rep.step_accuracy < 0.6);
  opt.max_steps = 3;
  const auto short_rep = rollout(
      [](const std::uint8_t* t, int b, std::uint8_t* a) { expert_actions(t, b, 8, a); }, ps,
      nullptr, opt);
  CHECK(short_rep.successes + short_rep.timeouts == 100);
  CHECK(short_rep.timeouts > 0);
}
