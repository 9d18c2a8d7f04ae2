#pragma once
/// Closed-loop episodes: a policy drives an agent from start to goal on each problem, all live
/// episodes advancing together (one batched policy call per step), and the figures that
/// matter: success, collisions, timeouts, path length ratio to A*, exact optimality, per-step
/// action accuracy, decisions per second.
#include <chrono>
#include <cstdint>
#include <vector>

#include "astar.hpp"
#include "encoding.hpp"
#include "map_gen.hpp"

namespace nanonav {

/// How one episode ended.
enum class Outcome : std::uint8_t {
  Success,    ///< reached the goal within the step limit
  Collision,  ///< chose a move into an obstacle or off the map (the episode stops there)
  Timeout,    ///< step limit reached, or a cell revisited (a deterministic policy then loops)
};

inline const char* to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::Success: return "success";
    case Outcome::Collision: return "collision";
    case Outcome::Timeout: return "timeout";
  }
  return "?";
}

/// One episode's record.
struct EpisodeResult {
  Outcome outcome = Outcome::Timeout;
  int steps = 0;             ///< moves made (Stay counts as a step)
  int astar_length = 0;      ///< optimal 4-connected path length (moves)
  int decisions = 0;         ///< policy decisions taken
  int optimal_decisions = 0; ///< decisions that were one of the optimal actions
  std::vector<Pos> path;     ///< cells visited, start first
  Action last_action = Action::Stay;  ///< for a collision: the move that hit
};

/// The summary over episodes.
struct RolloutReport {
  int episodes = 0, successes = 0, collisions = 0, timeouts = 0;
  double success_rate = 0;      ///< successes / episodes
  double mean_ratio = 0;        ///< mean over successes of steps / A* length
  double optimal_share = 0;     ///< share of successes whose length equals A*'s
  double step_accuracy = 0;     ///< share of all decisions that were optimal actions
  double decisions_per_second = 0;
  double seconds = 0;
  long long decisions = 0;
};

struct RolloutOptions {
  int max_steps = 0;            ///< 0: 4 * N * N, the seed's limit
  bool stop_on_revisit = true;  ///< a revisited cell ends the episode as a timeout (exact for
                                ///< a deterministic policy: it would loop forever)
  Encoding encoding = Encoding::Seed;  ///< the tokens handed to the policy (the model's)
};

/// Runs every problem to its end. `policy(tokens, batch, actions)` reads `batch` encoded states
/// (tokens_per_state(N) bytes each, contiguous) and writes one action (0..4) per state: for a
/// model this is one batched forward pass. Problems must be square N x N maps.
template <class BatchPolicy>
RolloutReport rollout(BatchPolicy&& policy, const std::vector<Problem>& problems,
                      std::vector<EpisodeResult>* results = nullptr,
                      const RolloutOptions& opt = {}) {
  RolloutReport rep;
  const std::size_t n_ep = problems.size();
  std::vector<EpisodeResult> local;
  std::vector<EpisodeResult>& res = results ? *results : local;
  res.assign(n_ep, EpisodeResult{});
  if (n_ep == 0) return rep;
  const int n = encodable_size(problems[0].grid);
  const int T = tokens_per_state(n);
  const int max_steps = opt.max_steps > 0 ? opt.max_steps : 4 * n * n;

  // Per-episode state: tokens, distances to the goal (for optimal-action accounting), visits.
  std::vector<std::uint8_t> tokens(n_ep * static_cast<std::size_t>(T));
  std::vector<std::vector<std::int32_t>> dist(n_ep);
  std::vector<std::vector<std::uint8_t>> visited(n_ep);
  std::vector<Pos> cur(n_ep);
  std::vector<std::size_t> live;
  for (std::size_t e = 0; e < n_ep; ++e) {
    const Problem& p = problems[e];
    if (encodable_size(p.grid) != n)
      throw InvalidArgument("rollout: all problems must have the same size");
    goal_distances(p.grid, p.goal, dist[e]);
    const std::int32_t d0 = dist[e][p.grid.index(p.start)];
    if (d0 <= 0) throw InvalidArgument("rollout: a problem's goal is unreachable or equals its start");
    res[e].astar_length = d0;
    res[e].path.push_back(p.start);
    cur[e] = p.start;
    visited[e].assign(static_cast<std::size_t>(n * n), 0);
    visited[e][p.grid.index(p.start)] = 1;
    encode_state(p.grid, p.start, p.goal, &tokens[e * T], opt.encoding);
    live.push_back(e);
  }

  std::vector<std::uint8_t> batch_tokens, actions;
  double policy_seconds = 0;
  for (int t = 0; t < max_steps && !live.empty(); ++t) {
    batch_tokens.resize(live.size() * static_cast<std::size_t>(T));
    for (std::size_t i = 0; i < live.size(); ++i)
      std::copy_n(&tokens[live[i] * T], T, &batch_tokens[i * T]);
    actions.assign(live.size(), 0);
    const auto t0 = std::chrono::steady_clock::now();
    policy(batch_tokens.data(), static_cast<int>(live.size()), actions.data());
    policy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.decisions += static_cast<long long>(live.size());

    std::size_t kept = 0;
    for (std::size_t i = 0; i < live.size(); ++i) {
      const std::size_t e = live[i];
      const Problem& p = problems[e];
      EpisodeResult& r = res[e];
      NANONAV_ASSERT(actions[i] < kNumActions);
      const Action a = static_cast<Action>(actions[i]);
      const std::uint8_t mask = optimal_action_mask(p.grid, dist[e], cur[e]);
      ++r.decisions;
      if (mask & (1u << actions[i])) ++r.optimal_decisions;
      r.last_action = a;
      const Pos next = step(cur[e], a);
      if (!p.grid.is_free(next)) {
        r.outcome = Outcome::Collision;
        continue;
      }
      ++r.steps;
      cur[e] = next;
      r.path.push_back(next);
      if (next == p.goal) {
        r.outcome = Outcome::Success;
        continue;
      }
      std::uint8_t& seen = visited[e][p.grid.index(next)];
      if (seen && opt.stop_on_revisit) {
        r.outcome = Outcome::Timeout;
        continue;
      }
      seen = 1;
      encode_current(n, next, &tokens[e * T], opt.encoding);
      live[kept++] = e;
    }
    live.resize(kept);
  }
  // Whatever is still live ran out of steps: its outcome stays Timeout.

  long long optimal_decisions = 0;
  double ratio_sum = 0;
  int optimal_paths = 0;
  for (const EpisodeResult& r : res) {
    optimal_decisions += r.optimal_decisions;
    if (r.outcome == Outcome::Success) {
      ++rep.successes;
      ratio_sum += static_cast<double>(r.steps) / r.astar_length;
      optimal_paths += r.steps == r.astar_length;
    } else if (r.outcome == Outcome::Collision) {
      ++rep.collisions;
    } else {
      ++rep.timeouts;
    }
  }
  rep.episodes = static_cast<int>(n_ep);
  rep.success_rate = static_cast<double>(rep.successes) / rep.episodes;
  rep.mean_ratio = rep.successes ? ratio_sum / rep.successes : 0.0;
  rep.optimal_share = rep.successes ? static_cast<double>(optimal_paths) / rep.successes : 0.0;
  rep.step_accuracy = rep.decisions ? static_cast<double>(optimal_decisions) / rep.decisions : 0.0;
  rep.seconds = policy_seconds;
  rep.decisions_per_second = policy_seconds > 0 ? rep.decisions / policy_seconds : 0.0;
  return rep;
}

/// A deterministic reference policy that always takes the lowest-numbered optimal action
/// (the A* expert for DAgger and for tests): decodes the map from the tokens.
inline void expert_actions(const std::uint8_t* tokens, int batch, int n, std::uint8_t* actions) {
  const int T = tokens_per_state(n);
  Grid g(n, n);
  std::vector<std::int32_t> dist;
  for (int b = 0; b < batch; ++b) {
    const std::uint8_t* t = tokens + static_cast<std::ptrdiff_t>(b) * T;
    for (int i = 0; i < n * n; ++i) g.data()[i] = t[i] == kTokenObstacle ? 1 : 0;
    const Pos cur{t[n * n] - kTokenCoordOffset, t[n * n + 1] - kTokenCoordOffset};
    const Pos goal{t[n * n + 2] - kTokenCoordOffset, t[n * n + 3] - kTokenCoordOffset};
    goal_distances(g, goal, dist);
    const std::uint8_t mask = optimal_action_mask(g, dist, cur);
    std::uint8_t a = static_cast<std::uint8_t>(Action::Stay);
    for (int k = 0; k < kNumActions; ++k)
      if (mask & (1u << k)) {
        a = static_cast<std::uint8_t>(k);
        break;
      }
    actions[b] = a;
  }
}

}  // namespace nanonav
