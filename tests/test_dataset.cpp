#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nanonav/dataset.hpp>

using namespace nanonav;

namespace {
std::string tmp_path(const std::string& name) { return std::string(NANONAV_TEST_TMPDIR) + "/" + name; }

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

bool same_samples(const Dataset& a, const Dataset& b) {
  return a.tokens == b.tokens && a.action == b.action && a.mask == b.mask &&
         a.map_index == b.map_index;
}

GenerateOptions small_options(int n, std::uint64_t maps, LabelMode labels, bool augment) {
  GenerateOptions o;
  o.num_maps = maps;
  o.grid_size = n;
  o.density = 0.25;
  o.seed = 7;
  o.labels = labels;
  o.augment = augment;
  return o;
}

Pos decode_pos(const std::uint8_t* tok, int n, int which) {
  return {tok[n * n + 2 * which] - kTokenCoordOffset, tok[n * n + 2 * which + 1] - kTokenCoordOffset};
}
}  // namespace

TEST_CASE("path labels follow A* from start to goal, goal excluded", "[dataset]") {
  // . . . .
  // # # . #
  // . . . .
  // . # # .    start (0, 0), goal (3, 0)
  Problem p{Grid(4, 4), {0, 0}, {3, 0}};
  for (Pos b : {Pos{1, 0}, Pos{1, 1}, Pos{1, 3}, Pos{3, 1}, Pos{3, 2}}) p.grid.set_blocked(b, true);
  Dataset ds;
  ds.info.grid_size = 4;
  SampleWorkspace ws;
  const int moves = append_problem_samples(p, LabelMode::Path, false, 3, ds, ws);
  const SearchResult r = astar(p.grid, p.start, p.goal);
  CHECK(moves == 7);  // R R D D L L D
  REQUIRE(ds.size() == 7);
  CHECK(ds.tokens.size() == 7 * 20);
  for (std::size_t k = 0; k < ds.size(); ++k) {
    const std::uint8_t* tok = ds.sample_tokens(k);
    CHECK(std::vector<std::uint8_t>(tok, tok + 20) == encode_state(p.grid, r.path[k], p.goal));
    CHECK(ds.action[k] == static_cast<std::uint8_t>(action_between(r.path[k], r.path[k + 1])));
    CHECK((ds.mask[k] >> ds.action[k] & 1));
    CHECK(ds.map_index[k] == 3);
  }
  // The only shortest path here is unique, so every mask has exactly one bit.
  CHECK(ds.mask == std::vector<std::uint8_t>{8, 8, 2, 2, 4, 4, 2});
}

TEST_CASE("all-cells labels every reachable free cell but the goal", "[dataset]") {
  Problem p{Grid(4, 4), {0, 0}, {3, 0}};
  for (Pos b : {Pos{1, 0}, Pos{1, 1}, Pos{1, 3}, Pos{3, 1}, Pos{3, 2}}) p.grid.set_blocked(b, true);
  // Make (3, 3) unreachable by blocking (2, 3).
  p.grid.set_blocked({2, 3}, true);
  Dataset ds;
  ds.info.grid_size = 4;
  SampleWorkspace ws;
  append_problem_samples(p, LabelMode::AllCells, false, 0, ds, ws);
  // 16 cells - 6 blocked - goal - unreachable (3, 3) = 8 samples.
  REQUIRE(ds.size() == 8);
  std::vector<std::int32_t> dist;
  goal_distances(p.grid, p.goal, dist);
  for (std::size_t k = 0; k < ds.size(); ++k) {
    const Pos cur = decode_pos(ds.sample_tokens(k), 4, 0);
    CHECK(cur != p.goal);
    CHECK(dist[static_cast<std::size_t>(cur.row * 4 + cur.col)] > 0);
    CHECK(ds.mask[k] == optimal_action_mask(p.grid, dist, cur));
    int lowest = 0;
    while (!(ds.mask[k] >> lowest & 1)) ++lowest;
    CHECK(ds.action[k] == lowest);
  }
}

TEST_CASE("augmentation gives exactly 8x the samples, each a transformed copy", "[dataset]") {
  for (LabelMode mode : {LabelMode::Path, LabelMode::AllCells}) {
    const Dataset plain = generate_dataset(small_options(6, 40, mode, false));
    const Dataset aug = generate_dataset(small_options(6, 40, mode, true));
    REQUIRE(aug.size() == 8 * plain.size());
    CHECK(aug.bytes() == aug.size() * (40 + 6));
    CHECK(aug.info.mean_path_length == plain.info.mean_path_length);
    // Per map: 8 blocks of that map's plain samples, block d transformed by d.
    const std::size_t t = plain.seq_len();
    std::size_t pi = 0, ai = 0;
    std::vector<std::uint8_t> buf(t);
    while (pi < plain.size()) {
      std::size_t k = 0;
      while (pi + k < plain.size() && plain.map_index[pi + k] == plain.map_index[pi]) ++k;
      for (int d = 0; d < kNumDihedral; ++d)
        for (std::size_t j = 0; j < k; ++j) {
          const std::size_t a = ai + static_cast<std::size_t>(d) * k + j;
          const auto dih = static_cast<Dihedral>(d);
          transform_tokens(dih, 6, plain.sample_tokens(pi + j), buf.data());
          REQUIRE(std::equal(buf.begin(), buf.end(), aug.sample_tokens(a)));
          REQUIRE(aug.action[a] == static_cast<std::uint8_t>(transform(dih, static_cast<Action>(plain.action[pi + j]))));
          REQUIRE(aug.mask[a] == transform_mask(dih, plain.mask[pi + j]));
          REQUIRE(aug.map_index[a] == plain.map_index[pi]);
        }
      pi += k;
      ai += 8 * k;
    }
    CHECK(ai == aug.size());
  }
}

TEST_CASE("generated samples are consistent: labels optimal, moves stay on free cells",
          "[dataset]") {
  const Dataset ds = generate_dataset(small_options(8, 200, LabelMode::Path, true));
  const int n = 8;
  CHECK(ds.info.num_maps == 200);
  CHECK(ds.info.mean_path_length > 1.0);
  std::uint64_t maps_seen = 0;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    const std::uint8_t* tok = ds.sample_tokens(i);
    const Pos cur = decode_pos(tok, n, 0), goal = decode_pos(tok, n, 1);
    REQUIRE(cur != goal);
    REQUIRE(ds.action[i] < 4);
    REQUIRE((ds.mask[i] >> ds.action[i] & 1));
    const Pos next = step(cur, static_cast<Action>(ds.action[i]));
    REQUIRE(next.row >= 0);
    REQUIRE(next.row < n);
    REQUIRE(next.col >= 0);
    REQUIRE(next.col < n);
    REQUIRE(tok[cur.row * n + cur.col] == kTokenFree);
    REQUIRE(tok[next.row * n + next.col] == kTokenFree);
    if (i == 0 || ds.map_index[i] != ds.map_index[i - 1]) ++maps_seen;
  }
  CHECK(maps_seen == 200);
  const auto h = action_histogram(ds);
  CHECK(h[4] == 0);
  // Augmentation balances the four moves exactly.
  CHECK(h[0] == h[1]);
  CHECK(h[1] == h[2]);
  CHECK(h[2] == h[3]);
}

TEST_CASE("generation is identical for 1 and 2 threads and matches the one-map API",
          "[dataset]") {
  GenerateOptions o = small_options(8, 2500, LabelMode::Path, true);  // > one 2048-map block
  o.threads = 1;
  std::vector<std::uint64_t> progress;
  o.progress = [&](std::uint64_t done, std::uint64_t total) {
    CHECK(total == 2500);
    progress.push_back(done);
  };
  const Dataset one = generate_dataset(o);
  CHECK(progress == std::vector<std::uint64_t>{2048, 2500});
  o.threads = 2;
  o.progress = nullptr;
  const Dataset two = generate_dataset(o);
  CHECK(same_samples(one, two));
  CHECK(one.info.mean_path_length == two.info.mean_path_length);

  Dataset seq;
  seq.info.grid_size = 8;
  SampleWorkspace ws;
  for (std::uint64_t i = 0; i < 50; ++i)
    append_problem_samples(random_problem(8, 8, 0.25, 7, i), LabelMode::Path, true,
                           static_cast<std::uint32_t>(i), seq, ws);
  REQUIRE(seq.size() <= one.size());
  CHECK(std::equal(seq.tokens.begin(), seq.tokens.end(), one.tokens.begin()));
  CHECK(std::equal(seq.action.begin(), seq.action.end(), one.action.begin()));

  o.seed = 8;
  CHECK_FALSE(same_samples(generate_dataset(o), one));
}

TEST_CASE("generate_dataset rejects options outside their domain", "[dataset]") {
  auto bad = [](auto change) {
    GenerateOptions o = small_options(8, 5, LabelMode::Path, false);
    change(o);
    return o;
  };
  CHECK_THROWS_AS(generate_dataset(bad([](GenerateOptions& o) { o.grid_size = 1; })), InvalidArgument);
  CHECK_THROWS_AS(generate_dataset(bad([](GenerateOptions& o) { o.grid_size = 253; })), InvalidArgument);
  CHECK_THROWS_AS(generate_dataset(bad([](GenerateOptions& o) { o.density = 1.0; })), InvalidArgument);
  CHECK_THROWS_AS(generate_dataset(bad([](GenerateOptions& o) { o.density = -0.1; })), InvalidArgument);
  CHECK_THROWS_AS(generate_dataset(bad([](GenerateOptions& o) { o.threads = -1; })), InvalidArgument);
  // Too dense for a 2x2 map: random_problem's error comes out of the parallel loop.
  CHECK_THROWS_AS(generate_dataset(bad([](GenerateOptions& o) {
                    o.grid_size = 2;
                    o.density = 0.9;
                  })),
                  InvalidArgument);
  CHECK(parse_label_mode("all-cells") == LabelMode::AllCells);
  CHECK(parse_label_mode("path") == LabelMode::Path);
  CHECK_THROWS_AS(parse_label_mode("cells"), InvalidArgument);
  CHECK(generate_dataset(bad([](GenerateOptions& o) { o.num_maps = 0; })).empty());
}

TEST_CASE("datasets survive a save/load round trip", "[dataset]") {
  for (LabelMode mode : {LabelMode::Path, LabelMode::AllCells}) {
    const Dataset ds = generate_dataset(small_options(5, 30, mode, mode == LabelMode::Path));
    const std::string path = tmp_path("ds_roundtrip.safetensors");
    save_dataset(path, ds);
    const Dataset back = load_dataset(path);
    CHECK(same_samples(ds, back));
    CHECK(back.info.grid_size == 5);
    CHECK(back.info.density == ds.info.density);
    CHECK(back.info.seed == 7);
    CHECK(back.info.labels == mode);
    CHECK(back.info.augment == ds.info.augment);
    CHECK(back.info.num_maps == 30);
    CHECK(back.info.mean_path_length == ds.info.mean_path_length);
    detail::SafetensorsReader r(path);
    CHECK(r.meta("format") == "nanonav-dataset");
    CHECK(r.meta("tokens_per_sample") == "29");
    CHECK(r.meta("vocab_size") == "8");
    CHECK(r.file_size() < ds.bytes() + 2048);
  }
  // The marked encoding: every sample marks the agent where its coordinate tokens say, the
  // goal once, and exactly the free neighbours of the agent; the encoding survives the trip.
  GenerateOptions mo = small_options(5, 30, LabelMode::AllCells, true);
  mo.encoding = Encoding::Marked;
  const Dataset marked = generate_dataset(mo);
  const Dataset seed = generate_dataset(small_options(5, 30, LabelMode::AllCells, true));
  REQUIRE(marked.size() == seed.size());
  CHECK(marked.action == seed.action);
  CHECK(marked.info.vocab() == 19);
  for (std::size_t i = 0; i < marked.size(); ++i) {
    const std::uint8_t* tok = marked.sample_tokens(i);
    const std::uint8_t* plain = seed.sample_tokens(i);
    const Pos cur = decode_pos(tok, 5, 0), goal = decode_pos(tok, 5, 1);
    int goals = 0;
    for (int c = 0; c < 25; ++c) {
      goals += tok[c] == goal_token(5) || (tok[c] >= neighbour_token(5, Action::Up, true) &&
                                           tok[c] <= neighbour_token(5, Action::Right, true));
      if (plain[c] == kTokenObstacle) REQUIRE(tok[c] == kTokenObstacle);
    }
    REQUIRE(goals == 1);
    REQUIRE(tok[cur.row * 5 + cur.col] == agent_token(5));
    for (int a = 0; a < 4; ++a) {
      const Pos q = step(cur, static_cast<Action>(a));
      if (q.row < 0 || q.col < 0 || q.row >= 5 || q.col >= 5) continue;
      const std::uint8_t v = tok[q.row * 5 + q.col];
      if (plain[q.row * 5 + q.col] == kTokenObstacle) REQUIRE(v == kTokenObstacle);
      else REQUIRE(v == neighbour_token(5, static_cast<Action>(a), q == goal));
    }
  }
  const std::string mpath = tmp_path("ds_marked.safetensors");
  save_dataset(mpath, marked);
  const Dataset mback = load_dataset(mpath);
  CHECK(mback.info.encoding == Encoding::Marked);
  CHECK(same_samples(marked, mback));
  CHECK(detail::SafetensorsReader(mpath).meta("vocab_size") == "19");
  // A marked file whose agent marker is not where its coordinates say is refused.
  Dataset moved = marked;
  {
    std::uint8_t* tok = moved.tokens.data();
    const Pos cur = decode_pos(tok, 5, 0);
    tok[cur.row * 5 + cur.col] = kTokenFree;
  }
  save_dataset(mpath, moved);
  CHECK_THROWS_WITH(load_dataset(mpath), Catch::Contains("agent marker"));
  Dataset mixed = seed;
  CHECK_THROWS_AS(mixed.append(marked), InvalidArgument);

  Dataset empty;
  empty.info.grid_size = 3;
  save_dataset(tmp_path("ds_empty.safetensors"), empty);
  CHECK(load_dataset(tmp_path("ds_empty.safetensors")).empty());
}

TEST_CASE("load_dataset rejects truncated and corrupt files with FormatError", "[dataset]") {
  const Dataset ds = generate_dataset(small_options(3, 4, LabelMode::Path, false));
  const std::string good = tmp_path("ds_good.safetensors"), path = tmp_path("ds_bad.safetensors");
  save_dataset(good, ds);
  const auto bytes = read_bytes(good);
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    write_bytes(path, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)));
    INFO("truncated to " << len << " of " << bytes.size());
    CHECK_THROWS_AS(load_dataset(path), FormatError);
  }
  // Every single-byte corruption of the data buffer that breaks an invariant is caught, and
  // none crashes or throws anything but FormatError.
  const detail::SafetensorsReader r(good);
  int caught = 0;
  for (std::size_t at = r.data_start(); at < bytes.size(); ++at) {
    auto b = bytes;
    b[at] = 0xEE;
    write_bytes(path, b);
    try {
      load_dataset(path);
    } catch (const FormatError&) {
      ++caught;
    }
  }
  // Only the map_index bytes (4 per sample) may take any value.
  CHECK(caught == static_cast<int>(bytes.size() - r.data_start() - 4 * ds.size()));
}

TEST_CASE("load_dataset rejects wrong metadata, shapes and values", "[dataset]") {
  Dataset ds = generate_dataset(small_options(3, 4, LabelMode::Path, false));
  const std::string path = tmp_path("ds_shape.safetensors");
  const std::uint64_t n = ds.size(), t = ds.seq_len();
  // Writes the dataset's tensors with one thing changed.
  const auto write = [&](const std::string& tweak) {
    detail::SafetensorsWriter w;
    std::vector<std::uint8_t> longer(ds.tokens);
    longer.insert(longer.end(), n, 1);
    if (tweak == "tokens_shape") w.add("tokens", {n, t + 1}, longer.data());
    else if (tweak == "tokens_flat") w.add("tokens", {n * t}, ds.tokens.data());
    else if (tweak != "no_tokens") w.add("tokens", {n, t}, ds.tokens.data());
    w.add("action", {tweak == "action_short" ? n - 1 : n}, ds.action.data());
    if (tweak == "mask_dtype") w.add("mask", {n / 4}, reinterpret_cast<const std::uint32_t*>(ds.map_index.data()));
    else w.add("mask", {n}, ds.mask.data());
    w.add("map_index", {n}, ds.map_index.data());
    w.set_metadata("format", tweak == "format" ? "nanonav-checkpoint" : "nanonav-dataset");
    w.set_metadata("version", tweak == "version" ? "2" : "1");
    w.set_metadata("grid_size", tweak == "grid" ? "4" : tweak == "grid_text" ? "3x" : "3");
    w.set_metadata("density", "0.25");
    w.set_metadata("seed", "7");
    w.set_metadata("labels", tweak == "labels" ? "cells" : "path");
    // Files from before the marked encoding have no "encoding" key and read as seed tokens.
    if (tweak == "encoding") w.set_metadata("encoding", "onehot");
    else if (tweak == "encoding_marked") w.set_metadata("encoding", "marked");
    w.set_metadata("augment", tweak == "augment" ? "yes" : "false");
    if (tweak != "no_num_maps") w.set_metadata("num_maps", "4");
    w.set_metadata("mean_path_length", "2.5");
    w.write(path);
  };
  write("none");
  CHECK(same_samples(load_dataset(path), ds));
  CHECK(load_dataset(path).info.encoding == Encoding::Seed);
  for (const char* tweak : {"encoding", "tokens_shape", "tokens_flat", "no_tokens", "action_short",
                            "mask_dtype", "format", "version", "grid", "grid_text", "labels",
                            "augment", "no_num_maps"}) {
    write(tweak);
    INFO(tweak);
    CHECK_THROWS_AS(load_dataset(path), FormatError);
  }
  const Dataset keep = ds;
  const auto check_value = [&](const char* what) {
    write("none");
    INFO(what);
    CHECK_THROWS_AS(load_dataset(path), FormatError);
    ds = keep;
  };
  ds.tokens[3] = 3;  // a coordinate token in a cell slot
  check_value("cell token 3");
  ds.tokens[3] = agent_token(3);  // a marker in a file of seed tokens
  check_value("marker in a seed file");
  ds.tokens[t - 1] = static_cast<std::uint8_t>(vocab_size(3));  // coordinate >= vocabulary
  check_value("token >= vocab");
  ds.tokens[t - 1] = 0;
  check_value("token 0");
  ds.action[0] = 5;
  check_value("action 5");
  ds.mask[0] = 0;
  check_value("empty mask");
  ds.mask[0] = static_cast<std::uint8_t>(~(1u << ds.action[0]) & 0x1F);
  check_value("label not in mask");
  CHECK_THROWS_AS(load_dataset(tmp_path("no_such_dataset.safetensors")), IoError);
}

TEST_CASE("training helpers: shuffled indices and batch gathering", "[dataset]") {
  Rng a(5), b(5);
  const auto p = shuffled_indices(1000, a);
  CHECK(p == shuffled_indices(1000, b));
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint32_t i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
  CHECK(p != sorted);
  CHECK(shuffled_indices(0, a).empty());

  const Dataset ds = generate_dataset(small_options(4, 10, LabelMode::Path, false));
  const std::uint32_t idx[] = {2, 0, 2};
  std::vector<std::uint8_t> tok(3 * ds.seq_len()), act(3), msk(3);
  gather_batch(ds, idx, 3, tok.data(), act.data(), msk.data());
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(std::equal(tok.begin() + static_cast<std::ptrdiff_t>(k * ds.seq_len()),
                     tok.begin() + static_cast<std::ptrdiff_t>((k + 1) * ds.seq_len()),
                     ds.sample_tokens(idx[k])));
    CHECK(act[k] == ds.action[idx[k]]);
    CHECK(msk[k] == ds.mask[idx[k]]);
  }

  Dataset joined = ds;
  joined.append(ds);
  CHECK(joined.size() == 2 * ds.size());
  CHECK(joined.info.num_maps == 20);
  CHECK(joined.info.mean_path_length == ds.info.mean_path_length);
  Dataset other;
  other.info.grid_size = 5;
  CHECK_THROWS_AS(joined.append(other), InvalidArgument);
}

TEST_CASE("aux targets from tokens agree with the optimal-action labels, in every symmetry", "[dataset]") {
  for (Encoding enc : {Encoding::Seed, Encoding::Marked}) {
    GenerateOptions o = small_options(7, 30, LabelMode::AllCells, true);
    o.encoding = enc;
    const Dataset ds = generate_dataset(o);
    const int n = 7;
    DistanceWorkspace ws;
    std::vector<std::uint16_t> d(static_cast<std::size_t>(n * n));
    for (std::size_t i = 0; i < ds.size(); ++i) {
      const std::uint8_t* tok = ds.sample_tokens(i);
      state_goal_distances(n, tok, ws, d.data());
      const Pos cur = decode_pos(tok, n, 0), goal = decode_pos(tok, n, 1);
      const auto at = [&](Pos p) { return d[static_cast<std::size_t>(p.row * n + p.col)]; };
      REQUIRE(at(goal) == 0);
      REQUIRE(at(cur) != nn::kNoTarget);
      REQUIRE(at(cur) > 0);
      // An action is optimal exactly when it steps to a cell one closer to the goal.
      for (int a = 0; a < 4; ++a) {
        const Pos q = step(cur, static_cast<Action>(a));
        const bool closer = detail::on_map(n, q) && at(q) != nn::kNoTarget && at(q) + 1 == at(cur);
        REQUIRE(closer == ((ds.mask[i] >> a & 1) != 0));
      }
      for (int c = 0; c < n * n; ++c)
        if (tok[c] == kTokenObstacle) REQUIRE(d[static_cast<std::size_t>(c)] == nn::kNoTarget);
    }
  }
}
