#include <nanonav/nanonav.hpp>

int count_free_b(int size) {
  nanonav::Grid g(size, size);
  g.set_blocked({size - 1, size - 1}, true);
  return g.cells() - g.count_blocked();
}

// The README's robot snippet, compiled (never called: there is no checkpoint here).
nanonav::Action readme_policy_example(const std::uint8_t* costmap, int row, int col, int goal_row,
                                      int goal_col) {
  nanonav::GridView map(costmap, 8, 8, /*stride=*/8, /*lethal=*/253);
  nanonav::Policy policy("checkpoints/best.safetensors");
  return policy.act(map, {row, col}, {goal_row, goal_col});
}
