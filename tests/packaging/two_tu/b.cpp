#include <nanonav/nanonav.hpp>

int count_free_b(int size) {
  nanonav::Grid g(size, size);
  g.set_blocked({size - 1, size - 1}, true);
  return g.cells() - g.count_blocked();
}
