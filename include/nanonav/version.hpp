#pragma once
/// nanonav's version: the one source (CMakeLists.txt parses these lines).
#define NANONAV_VERSION_MAJOR 0
#define NANONAV_VERSION_MINOR 1
#define NANONAV_VERSION_PATCH 0

namespace nanonav {
/// The library version as "MAJOR.MINOR.PATCH".
inline constexpr const char* version_string = "0.1.0";
}  // namespace nanonav
