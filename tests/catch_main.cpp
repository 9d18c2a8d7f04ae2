#define CATCH_CONFIG_MAIN
// Catch2's runner pulls in libstdc++'s <regex>, in which GCC 12 sees a maybe-uninitialized
// std::function under the sanitizer flags (the asan preset): a false positive inside the
// standard library, silenced for this translation unit only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <catch2/catch.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
