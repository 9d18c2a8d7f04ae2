# Finds nanonav's dependencies. Each one that is missing stops configure with the name of
# the Debian package that provides it.
include(GNUInstallDirs)

macro(nanonav_require_package name version debian)
  find_package(${name} ${version} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR
      "nanonav needs ${name} (>= ${version}), which was not found.\n"
      "On Debian/Ubuntu install it with:  sudo apt-get install -y ${debian}")
  endif()
endmacro()

# stb_image_write is a single header; Debian puts it in /usr/include/stb.
macro(nanonav_require_stb)
  find_path(NANONAV_STB_INCLUDE_DIR stb/stb_image_write.h)
  if(NOT NANONAV_STB_INCLUDE_DIR)
    message(FATAL_ERROR
      "nanonav's pictures need stb_image_write.h (stb/stb_image_write.h), which was not found.\n"
      "On Debian/Ubuntu install it with:  sudo apt-get install -y libstb-dev")
  endif()
endmacro()

nanonav_require_package(Eigen3 3.3 "libeigen3-dev")
nanonav_require_package(nlohmann_json 3 "nlohmann-json3-dev")
find_package(OpenMP QUIET COMPONENTS CXX)
if(NOT OpenMP_CXX_FOUND)
  message(FATAL_ERROR
    "nanonav needs OpenMP for C++, which was not found.\n"
    "On Debian/Ubuntu it comes with g++:  sudo apt-get install -y g++ (libgomp1)")
endif()
