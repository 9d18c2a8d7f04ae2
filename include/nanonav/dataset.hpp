#pragma once
/// Demonstrations -> (tokens, action, mask) arrays, generated in parallel but deterministically,
/// saved to and loaded from safetensors files (docs/formats.md describes the bytes).
///
/// Labelling modes:
///  - path: A* (4-connected) from start to goal; one sample per cell of the path except the
///    goal itself (the episode ends there, so the goal state is never a decision). Label =
///    the move A* made from that cell.
///  - all-cells: one sample for every free cell that can reach the goal, except the goal.
///    Label = the lowest-numbered optimal action (Up < Down < Left < Right), a fixed rule
///    instead of A*'s tie-breaking, so that no A* run per cell is needed.
/// In both modes `mask` has bit a set for every optimal action a at that state (one reverse
/// BFS from the goal), so the label's bit is always set and Stay never occurs.
///
/// Augmentation: every map's samples are repeated under all 8 dihedral transforms
/// (encoding.hpp), identity first, so an augmented dataset has exactly 8x the samples.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "astar.hpp"
#include "detail/rng.hpp"
#include "detail/safetensors.hpp"
#include "encoding.hpp"
#include "detail/text.hpp"
#include "errors.hpp"
#include "grid.hpp"
#include "map_gen.hpp"
#include "nn/loss.hpp"
#include "version.hpp"

namespace nanonav {

/// How samples are chosen and labelled (see the top of this header).
enum class LabelMode : std::uint8_t { Path = 0, AllCells = 1 };

inline const char* to_string(LabelMode m) noexcept {
  return m == LabelMode::AllCells ? "all-cells" : "path";
}

/// "path" or "all-cells". Throws InvalidArgument for anything else.
inline LabelMode parse_label_mode(const std::string& s) {
  if (s == "path") return LabelMode::Path;
  if (s == "all-cells") return LabelMode::AllCells;
  throw InvalidArgument("unknown labelling mode '" + s + "' (expected path or all-cells)");
}

/// Version of the dataset file layout written by save_dataset.
inline constexpr int kDatasetFormatVersion = 1;

/// What a dataset was generated from. Stored as the file's metadata.
struct DatasetInfo {
  int grid_size = 0;               ///< N: maps are N x N
  double density = 0.0;            ///< obstacle density passed to random_problem
  std::uint64_t seed = 0;          ///< map i is random_problem(N, N, density, seed, i)
  LabelMode labels = LabelMode::Path;
  Encoding encoding = Encoding::Seed;  ///< how states became tokens (encoding.hpp)
  bool augment = false;            ///< samples repeated under the 8 dihedral transforms
  std::uint64_t num_maps = 0;
  double mean_path_length = 0.0;   ///< mean A* path length (moves) start -> goal over the maps

  int tokens_per_sample() const noexcept { return tokens_per_state(grid_size); }
  int vocab() const noexcept { return vocab_size(grid_size, encoding); }
};

/// Samples as a struct of arrays, one byte per token/label: sample i is
/// tokens[i*T, (i+1)*T), action[i], mask[i], map_index[i].
struct Dataset {
  DatasetInfo info;
  std::vector<std::uint8_t> tokens;      ///< (n, T) encoded states
  std::vector<std::uint8_t> action;      ///< (n) single label, 0..3 (grid.hpp's Action)
  std::vector<std::uint8_t> mask;        ///< (n) bit a set when action a is optimal
  std::vector<std::uint32_t> map_index;  ///< (n) which generated map the sample comes from

  std::size_t size() const noexcept { return action.size(); }
  bool empty() const noexcept { return action.empty(); }
  /// Tokens per sample (T).
  std::size_t seq_len() const noexcept { return static_cast<std::size_t>(info.tokens_per_sample()); }
  /// The T tokens of sample i.
  const std::uint8_t* sample_tokens(std::size_t i) const noexcept {
    NANONAV_ASSERT(i < size());
    return tokens.data() + i * seq_len();
  }
  void reserve(std::size_t n) {
    tokens.reserve(n * seq_len());
    action.reserve(n);
    mask.reserve(n);
    map_index.reserve(n);
  }
  /// Appends one sample (T tokens).
  void push_back(const std::uint8_t* tok, std::uint8_t act, std::uint8_t msk, std::uint32_t map) {
    tokens.insert(tokens.end(), tok, tok + seq_len());
    action.push_back(act);
    mask.push_back(msk);
    map_index.push_back(map);
  }
  /// Appends the samples of `other` (same grid size, else InvalidArgument). map_index values
  /// are copied unchanged; num_maps and mean_path_length are combined.
  void append(const Dataset& other) {
    if (other.info.grid_size != info.grid_size)
      throw InvalidArgument("Dataset::append: grid size " + std::to_string(other.info.grid_size) +
                            " != " + std::to_string(info.grid_size));
    if (other.info.encoding != info.encoding)
      throw InvalidArgument(std::string("Dataset::append: encoding ") + to_string(other.info.encoding) +
                            " != " + to_string(info.encoding));
    const double total = static_cast<double>(info.num_maps + other.info.num_maps);
    if (total > 0)
      info.mean_path_length = (info.mean_path_length * static_cast<double>(info.num_maps) +
                               other.info.mean_path_length * static_cast<double>(other.info.num_maps)) /
                              total;
    info.num_maps += other.info.num_maps;
    tokens.insert(tokens.end(), other.tokens.begin(), other.tokens.end());
    action.insert(action.end(), other.action.begin(), other.action.end());
    mask.insert(mask.end(), other.mask.begin(), other.mask.end());
    map_index.insert(map_index.end(), other.map_index.begin(), other.map_index.end());
  }
  /// Bytes held by the arrays.
  std::size_t bytes() const noexcept {
    return tokens.size() + action.size() + mask.size() + map_index.size() * sizeof(std::uint32_t);
  }
};

/// Count of each label value (Up, Down, Left, Right, Stay).
inline std::array<std::uint64_t, kNumActions> action_histogram(const Dataset& ds) {
  std::array<std::uint64_t, kNumActions> h{};
  for (auto a : ds.action)
    if (a < kNumActions) ++h[a];
  return h;
}

/// Un-augmented samples of one map (tokens n x T, labels, masks) and its A* path length.
struct MapSamples {
  std::vector<std::uint8_t> tokens;
  std::vector<std::uint8_t> action;
  std::vector<std::uint8_t> mask;
  int path_moves = 0;
  std::size_t size() const noexcept { return action.size(); }
};

/// Reusable buffers for sample generation (one per thread).
struct SampleWorkspace {
  AStar astar;
  SearchResult result;
  std::vector<std::int32_t> dist;
  MapSamples base;
  std::vector<int> perm;  // cell permutation of each dihedral transform, 8 x n*n
  std::vector<std::uint8_t> lut;  // cell token -> transformed cell token, 8 x 256
  int perm_n = 0;
};

/// Fills `out` with the un-augmented samples of one problem (see the labelling modes at the
/// top of this header), encoded with `enc`. Throws InvalidArgument for a map that cannot be
/// encoded or whose goal is unreachable from the start.
inline void problem_samples(const Problem& p, LabelMode labels, MapSamples& out,
                            SampleWorkspace& ws, Encoding enc = Encoding::Seed) {
  const int n = encodable_size(p.grid);
  const std::size_t t = static_cast<std::size_t>(tokens_per_state(n));
  goal_distances(p.grid, p.goal, ws.dist);
  ws.astar.search(p.grid, p.start, p.goal, Connectivity::Four, ws.result);
  if (!ws.result.found)
    throw InvalidArgument("problem_samples: the goal is unreachable from the start");
  out.path_moves = static_cast<int>(ws.result.path.size()) - 1;
  out.tokens.clear();
  out.action.clear();
  out.mask.clear();
  std::vector<std::uint8_t>& b = out.tokens;
  const auto add = [&](Pos cur, std::uint8_t act) {
    const std::size_t at = b.size();
    if (at == 0) {
      b.resize(t);
      encode_state(p.grid, cur, p.goal, b.data(), enc);
    } else {
      b.resize(at + t);
      std::copy_n(b.data() + (at - t), t, b.data() + at);
      encode_current(n, cur, b.data() + at, enc);
    }
    out.action.push_back(act);
    out.mask.push_back(optimal_action_mask(p.grid, ws.dist, cur));
  };
  if (labels == LabelMode::Path) {
    for (std::size_t i = 0; i + 1 < ws.result.path.size(); ++i)
      add(ws.result.path[i],
          static_cast<std::uint8_t>(action_between(ws.result.path[i], ws.result.path[i + 1])));
  } else {
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        const Pos q{r, c};
        if (q == p.goal || ws.dist[static_cast<std::size_t>(r * n + c)] <= 0) continue;
        const std::uint8_t m = optimal_action_mask(p.grid, ws.dist, q);
        int a = 0;
        while (!(m & (1u << a))) ++a;
        add(q, static_cast<std::uint8_t>(a));
      }
  }
}

namespace detail {
// Writes the samples of `s` (maps of side n), repeated under `copies` transforms (1 or 8,
// identity first), to the arrays at the given pointers.
inline void write_transformed(const MapSamples& s, int n, int copies, std::uint32_t map_index,
                              SampleWorkspace& ws, std::uint8_t* tokens, std::uint8_t* action,
                              std::uint8_t* mask, std::uint32_t* map) {
  const std::size_t t = static_cast<std::size_t>(tokens_per_state(n));
  const std::size_t cells = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  const std::size_t k = s.size();
  if (copies > 1 && ws.perm_n != n) {
    ws.perm.resize(static_cast<std::size_t>(kNumDihedral) * cells);
    for (int d = 0; d < kNumDihedral; ++d)
      for (int r = 0; r < n; ++r)
        for (int c = 0; c < n; ++c) {
          const Pos q = transform(static_cast<Dihedral>(d), Pos{r, c}, n);
          ws.perm[static_cast<std::size_t>(d) * cells + static_cast<std::size_t>(r * n + c)] = q.row * n + q.col;
        }
    ws.lut.resize(static_cast<std::size_t>(kNumDihedral) * 256);
    for (int d = 0; d < kNumDihedral; ++d)
      for (int v = 0; v < 256; ++v)
        ws.lut[static_cast<std::size_t>(d * 256 + v)] =
            transform_cell_token(static_cast<Dihedral>(d), n, static_cast<std::uint8_t>(v));
    ws.perm_n = n;
  }
  std::copy_n(s.tokens.data(), k * t, tokens);
  std::copy_n(s.action.data(), k, action);
  std::copy_n(s.mask.data(), k, mask);
  for (int d = 1; d < copies; ++d) {
    const auto dih = static_cast<Dihedral>(d);
    const int* perm = ws.perm.data() + static_cast<std::size_t>(d) * cells;
    const std::uint8_t* lut = ws.lut.data() + static_cast<std::size_t>(d) * 256;
    for (std::size_t i = 0; i < k; ++i) {
      const std::uint8_t* in = s.tokens.data() + i * t;
      std::uint8_t* out = tokens + (static_cast<std::size_t>(d) * k + i) * t;
      for (std::size_t j = 0; j < cells; ++j) out[perm[j]] = lut[in[j]];
      for (std::size_t c = cells; c < t; c += 2) {
        const Pos q = transform(dih, Pos{in[c] - kTokenCoordOffset, in[c + 1] - kTokenCoordOffset}, n);
        out[c] = static_cast<std::uint8_t>(q.row + kTokenCoordOffset);
        out[c + 1] = static_cast<std::uint8_t>(q.col + kTokenCoordOffset);
      }
      action[static_cast<std::size_t>(d) * k + i] =
          static_cast<std::uint8_t>(transform(dih, static_cast<Action>(s.action[i])));
      mask[static_cast<std::size_t>(d) * k + i] = transform_mask(dih, s.mask[i]);
    }
  }
  std::fill_n(map, static_cast<std::size_t>(copies) * k, map_index);
}
}  // namespace detail

/// Appends the samples of one problem to `out` (whose info.grid_size must equal the map's
/// side), all 8 transforms of them when `augment`, and returns the A* path length in moves.
/// Throws InvalidArgument for a map that cannot be encoded or whose goal is unreachable.
inline int append_problem_samples(const Problem& p, LabelMode labels, bool augment,
                                  std::uint32_t map_index, Dataset& out, SampleWorkspace& ws) {
  const int n = encodable_size(p.grid);
  if (n != out.info.grid_size)
    throw InvalidArgument("append_problem_samples: map side " + std::to_string(n) +
                          " != dataset grid size " + std::to_string(out.info.grid_size));
  problem_samples(p, labels, ws.base, ws, out.info.encoding);
  const int copies = augment ? kNumDihedral : 1;
  const std::size_t at = out.size(), add = static_cast<std::size_t>(copies) * ws.base.size();
  out.tokens.resize(out.tokens.size() + add * out.seq_len());
  out.action.resize(at + add);
  out.mask.resize(at + add);
  out.map_index.resize(at + add);
  detail::write_transformed(ws.base, n, copies, map_index, ws, out.tokens.data() + at * out.seq_len(),
                            out.action.data() + at, out.mask.data() + at, out.map_index.data() + at);
  return ws.base.path_moves;
}

/// What to generate.
struct GenerateOptions {
  std::uint64_t num_maps = 5000;
  int grid_size = 8;
  double density = 0.2;
  std::uint64_t seed = 42;
  LabelMode labels = LabelMode::Path;
  Encoding encoding = Encoding::Seed;
  bool augment = false;
  int threads = 0;  ///< OpenMP threads; 0 = OpenMP's default
  /// Called now and then from the calling thread with (maps done, maps total).
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

/// Generates maps 0..num_maps-1 with random_problem(N, N, density, seed, i) and their samples,
/// in parallel over maps; the result is byte-identical for any number of threads (samples
/// are laid out in map order). Throws InvalidArgument for options outside their domain.
///
/// Two passes: first the un-augmented samples of every map (1/8 of the final size when
/// augmenting), then the final arrays are allocated once at their exact size and each map
/// writes its (transformed) copies at its own offset.
inline Dataset generate_dataset(const GenerateOptions& opt) {
  if (opt.grid_size < 2 || opt.grid_size > kMaxEncodedGridSize)
    throw InvalidArgument("generate_dataset: grid size must be in [2, " +
                          std::to_string(kMaxEncodedGridSize) + "], got " +
                          std::to_string(opt.grid_size));
  if (!(opt.density >= 0.0 && opt.density < 1.0))
    throw InvalidArgument("generate_dataset: obstacle density must be in [0, 1), got " +
                          std::to_string(opt.density));
  if (opt.num_maps > 0xFFFFFFFFull)
    throw InvalidArgument("generate_dataset: at most 2^32 - 1 maps");
  if (opt.threads < 0) throw InvalidArgument("generate_dataset: threads must be >= 0");

  Dataset ds;
  ds.info.grid_size = opt.grid_size;
  ds.info.density = opt.density;
  ds.info.seed = opt.seed;
  ds.info.labels = opt.labels;
  ds.info.encoding = opt.encoding;
  ds.info.augment = opt.augment;
  ds.info.num_maps = opt.num_maps;

#ifdef _OPENMP
  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#else
  const int nthreads = 1;
#endif
  const auto num_maps = static_cast<std::int64_t>(opt.num_maps);
  std::vector<MapSamples> maps(static_cast<std::size_t>(num_maps));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(nthreads));
  constexpr std::int64_t kBlock = 2048;  // maps between progress reports
  for (std::int64_t first = 0; first < num_maps; first += kBlock) {
    const std::int64_t last = std::min(num_maps, first + kBlock);
#pragma omp parallel num_threads(nthreads)
    {
      SampleWorkspace ws;
#pragma omp for schedule(dynamic, 16)
      for (std::int64_t i = first; i < last; ++i) {
        try {
          const Problem p = random_problem(opt.grid_size, opt.grid_size, opt.density, opt.seed,
                                           static_cast<std::uint64_t>(i));
          problem_samples(p, opt.labels, maps[static_cast<std::size_t>(i)], ws, opt.encoding);
        } catch (...) {
#ifdef _OPENMP
          errors[static_cast<std::size_t>(omp_get_thread_num())] = std::current_exception();
#else
          errors[0] = std::current_exception();
#endif
        }
      }
    }
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    if (opt.progress && last < num_maps) opt.progress(static_cast<std::uint64_t>(last), opt.num_maps);
  }

  const int copies = opt.augment ? kNumDihedral : 1;
  std::vector<std::size_t> offset(maps.size() + 1, 0);
  double path_sum = 0.0;
  for (std::size_t i = 0; i < maps.size(); ++i) {
    offset[i + 1] = offset[i] + static_cast<std::size_t>(copies) * maps[i].size();
    path_sum += maps[i].path_moves;
  }
  const std::size_t total = offset.back(), t = ds.seq_len();
  ds.tokens.resize(total * t);
  ds.action.resize(total);
  ds.mask.resize(total);
  ds.map_index.resize(total);
#pragma omp parallel num_threads(nthreads)
  {
    SampleWorkspace ws;
#pragma omp for schedule(dynamic, 64)
    for (std::int64_t i = 0; i < num_maps; ++i) {
      const auto u = static_cast<std::size_t>(i);
      detail::write_transformed(maps[u], opt.grid_size, copies, static_cast<std::uint32_t>(i), ws,
                                ds.tokens.data() + offset[u] * t, ds.action.data() + offset[u],
                                ds.mask.data() + offset[u], ds.map_index.data() + offset[u]);
      std::vector<std::uint8_t>().swap(maps[u].tokens);  // free as we go
    }
  }
  ds.info.mean_path_length = num_maps ? path_sum / static_cast<double>(num_maps) : 0.0;
  if (opt.progress && num_maps > 0) opt.progress(opt.num_maps, opt.num_maps);
  return ds;
}

// ---- training helpers ---------------------------------------------------------------------

/// 0..n-1 in a random order drawn from rng (Fisher-Yates; the same on every platform).
inline std::vector<std::uint32_t> shuffled_indices(std::size_t n, Rng& rng) {
  NANONAV_ASSERT(n <= 0xFFFFFFFFull);
  std::vector<std::uint32_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[rng.below(i)]);
  return idx;
}

/// Copies the samples idx[0..count) into contiguous batch buffers (any output may be null).
inline void gather_batch(const Dataset& ds, const std::uint32_t* idx, std::size_t count,
                         std::uint8_t* tokens_out, std::uint8_t* action_out,
                         std::uint8_t* mask_out) {
  const std::size_t t = ds.seq_len();
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t i = idx[k];
    NANONAV_ASSERT(i < ds.size());
    if (tokens_out) std::copy_n(ds.tokens.data() + i * t, t, tokens_out + k * t);
    if (action_out) action_out[k] = ds.action[i];
    if (mask_out) mask_out[k] = ds.mask[i];
  }
}

/// Scratch for state_goal_distances (reused across calls).
struct DistanceWorkspace {
  Grid grid;
  std::vector<std::int32_t> dist;
};

/// The aux-loss targets of one encoded state (tokens_per_state(n) tokens, either encoding):
/// out[r * n + c] = cell (r, c)'s 4-connected BFS distance to the encoded goal, nn::kNoTarget
/// for obstacles and cells that cannot reach it. Read from the tokens alone, so it holds for
/// any symmetry of a map. Throws SearchError when the encoded goal is on an obstacle.
inline void state_goal_distances(int n, const std::uint8_t* tokens, DistanceWorkspace& ws,
                                 std::uint16_t* out) {
  if (ws.grid.width() != n || ws.grid.height() != n) ws.grid = Grid(n, n);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) ws.grid.set_blocked({r, c}, tokens[r * n + c] == kTokenObstacle);
  goal_distances(ws.grid, detail::encoded_pos(n, tokens, 2), ws.dist);
  for (int i = 0; i < n * n; ++i)
    out[i] = ws.dist[static_cast<std::size_t>(i)] < 0 ? nn::kNoTarget
                                                      : static_cast<std::uint16_t>(ws.dist[static_cast<std::size_t>(i)]);
}

// ---- files --------------------------------------------------------------------------------

namespace detail {
template <class T>
T parse_meta_number(const SafetensorsReader& f, const std::string& key) {
  const std::string& s = f.meta(key);
  T v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size())
    f.fail(f.key_offset(key), "metadata '" + key + "' = '" + s + "' is not a valid number");
  return v;
}

/// The first sample that breaks the dataset's invariants, as a message ("" if none), and
/// the byte of the offending value inside its tensor.
inline std::string find_invalid_sample(const Dataset& ds, std::string& tensor, std::uint64_t& at) {
  const int n = ds.info.grid_size;
  const std::size_t t = ds.seq_len(), cells = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const std::uint8_t* s = ds.tokens.data() + i * t;
    for (std::size_t j = 0; j < t; ++j) {
      const unsigned v = s[j];
      const bool ok = j < cells ? valid_cell_token(n, ds.info.encoding, v)
                                : (v >= kTokenCoordOffset && v < kTokenCoordOffset + static_cast<unsigned>(n));
      if (!ok) {
        tensor = "tokens";
        at = i * t + j;
        return "sample " + std::to_string(i) + " token " + std::to_string(j) + " = " +
               std::to_string(v) + " is not a valid " + (j < cells ? "cell" : "coordinate") +
               " token for a " + std::to_string(n) + "x" + std::to_string(n) + " map (encoding " +
               to_string(ds.info.encoding) + ")";
      }
    }
    if (ds.info.encoding == Encoding::Marked) {  // the marker must sit where the coordinates say
      const Pos cur = detail::encoded_pos(n, s, 0);
      const std::size_t c = static_cast<std::size_t>(cur.row * n + cur.col);
      if (s[c] != agent_token(n) && s[c] != agent_on_goal_token(n)) {
        tensor = "tokens";
        at = i * t + c;
        return "sample " + std::to_string(i) + ": the cell at the agent's coordinates (" +
               std::to_string(cur.row) + "," + std::to_string(cur.col) + ") holds " +
               std::to_string(s[c]) + ", not the agent marker";
      }
    }
    if (ds.action[i] >= kNumActions || ds.mask[i] >= (1u << kNumActions) ||
        !(ds.mask[i] & (1u << ds.action[i]))) {
      tensor = ds.action[i] >= kNumActions ? "action" : "mask";
      at = i;
      return "sample " + std::to_string(i) + " has action " + std::to_string(ds.action[i]) +
             " and mask " + std::to_string(ds.mask[i]) +
             " (need action < 5, mask < 32 and the action's bit set in the mask)";
    }
  }
  return {};
}
}  // namespace detail

/// Writes `ds` to `path` as safetensors (atomically): tensors tokens U8 [n, T], action U8 [n],
/// mask U8 [n], map_index U32 [n] and the metadata of docs/formats.md. Throws IoError.
inline void save_dataset(const std::string& path, const Dataset& ds) {
  const std::uint64_t n = ds.size();
  NANONAV_ASSERT(ds.tokens.size() == n * ds.seq_len() && ds.mask.size() == n &&
                 ds.map_index.size() == n);
  detail::SafetensorsWriter w;
  w.add("tokens", {n, static_cast<std::uint64_t>(ds.seq_len())}, ds.tokens.data());
  w.add("action", {n}, ds.action.data());
  w.add("mask", {n}, ds.mask.data());
  w.add("map_index", {n}, ds.map_index.data());
  const DatasetInfo& i = ds.info;
  w.set_metadata("format", "nanonav-dataset");
  w.set_metadata("version", std::to_string(kDatasetFormatVersion));
  w.set_metadata("grid_size", std::to_string(i.grid_size));
  w.set_metadata("tokens_per_sample", std::to_string(i.tokens_per_sample()));
  w.set_metadata("vocab_size", std::to_string(i.vocab()));
  w.set_metadata("density", detail::format_double(i.density));
  w.set_metadata("seed", std::to_string(i.seed));
  w.set_metadata("labels", to_string(i.labels));
  w.set_metadata("encoding", to_string(i.encoding));
  w.set_metadata("augment", i.augment ? "true" : "false");
  w.set_metadata("num_maps", std::to_string(i.num_maps));
  w.set_metadata("num_samples", std::to_string(n));
  w.set_metadata("mean_path_length", detail::format_double(i.mean_path_length));
  w.set_metadata("generator", std::string("nanonav ") + version_string);
  w.write(path);
}

/// Reads a file written by save_dataset. Throws IoError if it cannot be read and FormatError
/// (file, byte offset, hint) if it is not a valid nanonav dataset: corrupt or truncated file,
/// other format or version, inconsistent shapes, token values outside the vocabulary, or
/// labels that contradict their masks.
inline Dataset load_dataset(const std::string& path) {
  detail::SafetensorsReader f(path);
  if (f.meta("format") != "nanonav-dataset")
    f.fail(f.key_offset("format"), "metadata format is '" + f.meta("format") + "', not 'nanonav-dataset'",
           "is this a checkpoint or another program's file?");
  const int version = detail::parse_meta_number<int>(f, "version");
  if (version != kDatasetFormatVersion)
    f.fail(f.key_offset("version"), "dataset format version " + std::to_string(version) +
                                        ", this build reads version " +
                                        std::to_string(kDatasetFormatVersion),
           "regenerate the dataset with this build's generate_dataset");
  Dataset ds;
  DatasetInfo& i = ds.info;
  i.grid_size = detail::parse_meta_number<int>(f, "grid_size");
  if (i.grid_size < 2 || i.grid_size > kMaxEncodedGridSize)
    f.fail(f.key_offset("grid_size"), "grid_size " + std::to_string(i.grid_size) + " outside [2, 252]");
  i.density = detail::parse_meta_number<double>(f, "density");
  i.seed = detail::parse_meta_number<std::uint64_t>(f, "seed");
  try {
    i.labels = parse_label_mode(f.meta("labels"));
  } catch (const InvalidArgument& e) {
    f.fail(f.key_offset("labels"), e.what());
  }
  // Files written before the marked encoding existed have no "encoding" key: seed tokens.
  if (f.has_meta("encoding")) {
    try {
      i.encoding = parse_encoding(f.meta("encoding"));
    } catch (const InvalidArgument& e) {
      f.fail(f.key_offset("encoding"), e.what());
    }
  }
  const std::string& aug = f.meta("augment");
  if (aug != "true" && aug != "false")
    f.fail(f.key_offset("augment"), "metadata augment = '" + aug + "', expected true or false");
  i.augment = aug == "true";
  i.num_maps = detail::parse_meta_number<std::uint64_t>(f, "num_maps");
  i.mean_path_length = detail::parse_meta_number<double>(f, "mean_path_length");

  const auto t = static_cast<std::int64_t>(i.tokens_per_sample());
  const detail::TensorInfo& tok = f.expect("tokens", detail::DType::U8, {-1, t});
  const auto n = static_cast<std::int64_t>(tok.shape[0]);
  const detail::TensorInfo& act = f.expect("action", detail::DType::U8, {n});
  const detail::TensorInfo& msk = f.expect("mask", detail::DType::U8, {n});
  const detail::TensorInfo& map = f.expect("map_index", detail::DType::U32, {n});
  // Every size above is bounded by the file size, so these allocations are safe.
  ds.tokens = f.read_vector<std::uint8_t>(tok);
  ds.action = f.read_vector<std::uint8_t>(act);
  ds.mask = f.read_vector<std::uint8_t>(msk);
  ds.map_index = f.read_vector<std::uint32_t>(map);
  std::string tensor;
  std::uint64_t at = 0;
  const std::string bad = detail::find_invalid_sample(ds, tensor, at);
  if (!bad.empty()) {
    const detail::TensorInfo* ti = f.find(tensor);
    f.fail(f.data_start() + ti->begin + at, bad, "the file is corrupt or was written by another tool");
  }
  return ds;
}

}  // namespace nanonav
