#include <nanonav/nanonav.hpp>

#include <cstdio>

int main() {
  nanonav::Grid g(3, 2);
  g.set_blocked({1, 2}, true);
  std::printf("nanonav %s: %dx%d grid with %d blocked cell\n", nanonav::version_string, g.width(),
              g.height(), g.count_blocked());
  return g.count_blocked() == 1 ? 0 : 1;
}
