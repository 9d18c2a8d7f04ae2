#pragma once
/// Umbrella header: includes the whole library (image.hpp, which needs stb, is separate).
#include "version.hpp"
#include "errors.hpp"
#include "grid.hpp"
#include "astar.hpp"
#include "map_gen.hpp"
#include "map_io.hpp"
#include "encoding.hpp"
#include "dataset.hpp"
#include "maze.hpp"
#include "seq_trm.hpp"
