#include <nanonav/nanonav.hpp>

int count_free_b(int size);  // defined in b.cpp

static int count_free_a(int size) {
  nanonav::Grid g(size, size);
  g.set_blocked({0, 0}, true);
  return g.cells() - g.count_blocked();
}

int main() {
  // Both units instantiate the same inline functions and templates; a non-inline definition in
  // a header would have failed the link before we got here.
  return count_free_a(4) == count_free_b(4) && count_free_a(4) == 15 ? 0 : 1;
}
