#pragma once
/// NANONAV_ASSERT(cond): checks a programmer's invariant. Define NANONAV_ASSERT before
/// including nanonav to route it elsewhere (e.g. to your own logger or to nothing).
#ifndef NANONAV_ASSERT
#include <cstdio>
#include <cstdlib>
#define NANONAV_ASSERT(cond)                                                               \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "nanonav: assertion failed: %s (%s:%d)\n", #cond, __FILE__,     \
                   __LINE__);                                                              \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
#endif
