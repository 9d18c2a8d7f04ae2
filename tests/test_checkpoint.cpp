#include <catch2/catch.hpp>

#include <nanonav/checkpoint.hpp>
#include <nanonav/dataset.hpp>
#include <nanonav/policy.hpp>

#include <cmath>
#include <fstream>
#include <iterator>

using namespace nanonav;

namespace {

TrmConfig tiny_config() {
  TrmConfig c;
  c.grid_size = 4;
  c.dim = 8;
  c.depth = 1;
  c.recursion = 2;
  c.dropout = 0.0;
  return c;
}

std::string tmp(const std::string& name) { return std::string(NANONAV_TEST_TMPDIR) + "/" + name; }

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_bytes(const std::string& path, const std::vector<char>& b, std::size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(b.data(), static_cast<std::streamsize>(n));
}

// A model with non-trivial optimiser state: a few AdamW steps on made-up gradients.
template <class S>
void train_a_little(Trm<S>& m, nn::AdamW<S>& opt) {
  for (int step = 0; step < 3; ++step) {
    m.for_each_param([&](nn::Param<S>& p) {
      for (Eigen::Index i = 0; i < p.grad.size(); ++i) p.grad.data()[i] = static_cast<S>(std::sin(0.37 * i + step));
    });
    opt.step(m, 1e-2);
  }
}

template <class S>
std::vector<S> flat_params(const Trm<S>& m) {
  std::vector<S> v;
  m.for_each_param([&](const nn::Param<S>& p) { v.insert(v.end(), p.value.data(), p.value.data() + p.value.size()); });
  return v;
}

}  // namespace

TEMPLATE_TEST_CASE("save then load is bit-exact, optimiser state included", "[checkpoint]", float, double) {
  Trm<TestType> a(tiny_config());
  a.init(7);
  nn::AdamW<TestType> oa;
  train_a_little(a, oa);
  const std::string path = tmp("ckpt_roundtrip.safetensors");
  save_checkpoint(path, a, &oa, {{"epoch", 3}, {"note", "hello"}});

  Trm<TestType> b(tiny_config());
  b.init(99);  // different values, overwritten by the load
  nn::AdamW<TestType> ob;
  const CheckpointInfo info = load_checkpoint(path, b, &ob);
  CHECK(info.version == checkpoint_version_for(a.config()));
  CHECK(info.has_optimizer);
  CHECK(info.optimizer_step == 3);
  CHECK(info.train_state.at("epoch") == 3);
  CHECK(info.train_state.at("note") == "hello");
  CHECK(flat_params(a) == flat_params(b));
  REQUIRE(ob.m().size() == oa.m().size());
  for (std::size_t i = 0; i < oa.m().size(); ++i) {
    CHECK(oa.m()[i] == ob.m()[i]);
    CHECK(oa.v()[i] == ob.v()[i]);
  }
  CHECK(ob.step_count() == oa.step_count());
  // Resuming continues the same trajectory: one more identical step on both.
  train_a_little(a, oa);
  train_a_little(b, ob);
  CHECK(flat_params(a) == flat_params(b));
}

TEST_CASE("inference-only load rebuilds the model from the file's config", "[checkpoint]") {
  TrmConfig c = tiny_config();
  c.dim = 12;
  Trm<float> a(c);
  a.init(3);
  const std::string path = tmp("ckpt_infer.safetensors");
  save_checkpoint(path, a);
  const CheckpointInfo info = read_checkpoint_info(path);
  CHECK_FALSE(info.has_optimizer);
  CHECK(info.config.dim == 12);
  const Trm<float> b = load_model<float>(path);
  CHECK(flat_params(a) == flat_params(b));
  // A float checkpoint also loads into a double model (converted exactly).
  const Trm<double> d = load_model<double>(path);
  const auto fa = flat_params(a);
  const auto fd = flat_params(d);
  REQUIRE(fa.size() == fd.size());
  for (std::size_t i = 0; i < fa.size(); ++i) CHECK(static_cast<double>(fa[i]) == fd[i]);
  // Resuming from an inference-only file is refused with a reason.
  Trm<float> e(c);
  nn::AdamW<float> opt;
  CHECK_THROWS_WITH(load_checkpoint(path, e, &opt), Catch::Contains("no optimiser state"));
}

TEST_CASE("the encoding is part of the config and sets the vocabulary", "[checkpoint]") {
  TrmConfig c = tiny_config();
  c.encoding = Encoding::Marked;
  Trm<float> a(c);
  a.init(4);
  CHECK(a.num_params() == Trm<float>(tiny_config()).num_params() + 11 * static_cast<std::size_t>(c.dim));
  const std::string path = tmp("ckpt_marked.safetensors");
  save_checkpoint(path, a);
  CHECK(read_checkpoint_info(path).config.encoding == Encoding::Marked);
  CHECK(load_model<float>(path).config().encoding == Encoding::Marked);
  // The robot facade encodes with the checkpoint's encoding, and refuses what it cannot mark.
  Policy policy(path);
  Grid g(4, 4);
  g.set_blocked({1, 2}, true);
  TrmWorkspace<float> ws;
  nn::Mat<float> logits;
  const auto tokens = encode_state(g, {1, 1}, {3, 3}, Encoding::Marked);
  trm_logits(a, tokens.data(), 1, ws, logits);
  Eigen::Index arg = 0;
  logits.row(0).maxCoeff(&arg);
  CHECK(static_cast<int>(policy.act(g, {1, 1}, {3, 3})) == arg);
  CHECK_THROWS_AS(policy.act(g, {1, 2}, {3, 3}), InvalidArgument);
  CHECK_THROWS_AS(policy.act(g, {1, 1}, {1, 2}), InvalidArgument);
  // A config written before the field existed means seed tokens; an unknown one is refused.
  nlohmann::json j = to_json(c);
  j.erase("encoding");
  CHECK(trm_config_from_json(j).encoding == Encoding::Seed);
  j["encoding"] = "onehot";
  CHECK_THROWS_AS(trm_config_from_json(j), InvalidArgument);
}

TEST_CASE("input injection is part of the config: saved, loaded, and absent means off", "[checkpoint]") {
  TrmConfig c = tiny_config();
  c.input_injection = true;
  Trm<float> a(c);
  a.init(5);
  const std::string path = tmp("ckpt_inject.safetensors");
  save_checkpoint(path, a);
  CHECK(read_checkpoint_info(path).config.input_injection);
  // Written as format 2, which nanonav builds from before injection refuse instead of running
  // the checkpoint with the seed's wiring; other configs stay format 1.
  CHECK(read_checkpoint_info(path).version == 2);
  save_checkpoint(tmp("ckpt_plain.safetensors"), Trm<float>(tiny_config()));
  CHECK(read_checkpoint_info(tmp("ckpt_plain.safetensors")).version == 1);
  const Trm<float> back = load_model<float>(path);
  CHECK(back.config().input_injection);
  // Same weights, other wiring: the checkpoint is refused by a model without injection.
  Trm<float> plain(tiny_config());
  CHECK_THROWS_AS(load_checkpoint(path, plain), FormatError);
  nlohmann::json j = to_json(c);
  j.erase("input_injection");
  CHECK_FALSE(trm_config_from_json(j).input_injection);
  j["input_injection"] = "yes";
  CHECK_THROWS_AS(trm_config_from_json(j), InvalidArgument);
}

TEST_CASE("an aux head is part of the config and of the tensors: round trip, format 2", "[checkpoint]") {
  TrmConfig c = tiny_config();
  c.aux_distance = 0.5;
  Trm<float> a(c);
  a.init(6);
  nn::AdamW<float> opt;
  train_a_little(a, opt);
  const std::string path = tmp("ckpt_aux.safetensors");
  save_checkpoint(path, a, &opt);
  const CheckpointInfo info = read_checkpoint_info(path);
  CHECK(info.version == 2);
  CHECK(info.config.aux_distance == 0.5);
  Trm<float> b(c);
  nn::AdamW<float> opt2;
  load_checkpoint(path, b, &opt2);
  CHECK(b.aux_head.weight.value == a.aux_head.weight.value);
  CHECK(b.aux_head.bias.value == a.aux_head.bias.value);
  CHECK(opt2.m().size() == opt.m().size());
  CHECK(opt2.m().back() == opt.m().back());  // the aux head's slot is the last one
  // The model without the head (other config) is refused; a config without the field is off.
  Trm<float> plain(tiny_config());
  CHECK_THROWS_AS(load_checkpoint(path, plain), FormatError);
  nlohmann::json j = to_json(c);
  j.erase("aux_distance");
  CHECK(trm_config_from_json(j).aux_distance == 0.0);
  j["aux_distance"] = -2.0;
  CHECK_THROWS_AS(trm_config_from_json(j), InvalidArgument);
}

TEST_CASE("a checkpoint of another config is refused and leaves the model untouched", "[checkpoint]") {
  Trm<float> a(tiny_config());
  a.init(1);
  const std::string path = tmp("ckpt_cfg.safetensors");
  save_checkpoint(path, a);
  TrmConfig other = tiny_config();
  other.dim = 16;
  Trm<float> b(other);
  b.init(2);
  const auto before = flat_params(b);
  CHECK_THROWS_AS(load_checkpoint(path, b), FormatError);
  CHECK(flat_params(b) == before);
}

TEST_CASE("truncated, corrupt, foreign and future checkpoints throw FormatError", "[checkpoint]") {
  Trm<float> a(tiny_config());
  a.init(5);
  nn::AdamW<float> oa;
  train_a_little(a, oa);
  const std::string path = tmp("ckpt_good.safetensors"), bad = tmp("ckpt_bad.safetensors");
  save_checkpoint(path, a, &oa);
  const std::vector<char> bytes = file_bytes(path);
  REQUIRE(bytes.size() > 200);
  // Truncation at many offsets: every prefix is rejected with a typed error, never a crash.
  int checked = 0;
  for (std::size_t n = 0; n < bytes.size(); n += (n < 300 ? 1 : 97)) {
    write_bytes(bad, bytes, n);
    Trm<float> b(tiny_config());
    nn::AdamW<float> ob;
    CHECK_THROWS_AS(load_checkpoint(bad, b, &ob), FormatError);
    ++checked;
  }
  CHECK(checked > 300);
  // A flipped byte inside the JSON header.
  std::vector<char> flipped = bytes;
  flipped[12] = '\x01';
  write_bytes(bad, flipped, flipped.size());
  CHECK_THROWS_AS(read_checkpoint_info(bad), FormatError);

  // A NaN in a weight.
  Trm<float> nan_model(tiny_config());
  nan_model.init(1);
  nan_model.for_each_param([](nn::Param<float>& p) { p.value(0, 0) = std::nanf(""); });
  save_checkpoint(bad, nan_model);
  Trm<float> c(tiny_config());
  CHECK_THROWS_WITH(load_checkpoint(bad, c), Catch::Contains("non-finite"));

  // A dataset file is not a checkpoint.
  GenerateOptions g;
  g.num_maps = 3;
  g.grid_size = 4;
  g.density = 0.1;
  save_dataset(bad, generate_dataset(g));
  CHECK_THROWS_WITH(read_checkpoint_info(bad), Catch::Contains("not a nanonav checkpoint"));

  // A file from a newer format version.
  detail::SafetensorsWriter w;
  const float one = 1.0f;
  w.add("x", detail::DType::F32, {1}, &one);
  w.set_metadata("format", kCheckpointFormat);
  w.set_metadata("version", "99");
  w.set_metadata("dtype", "F32");
  w.set_metadata("config", to_json(tiny_config()).dump());
  w.write(bad);
  CHECK_THROWS_WITH(read_checkpoint_info(bad), Catch::Contains("newer nanonav"));
  CHECK_THROWS_AS(read_checkpoint_info(tmp("does-not-exist.safetensors")), IoError);
}

TEST_CASE("Policy acts as the arg-max of the model and refuses maps of another size", "[checkpoint][policy]") {
  Trm<float> m(tiny_config());
  m.init(11);
  const std::string path = tmp("ckpt_policy.safetensors");
  save_checkpoint(path, m);
  Policy policy(path);
  Policy copy = policy;  // shares the weights, own workspace
  CHECK(&copy.model() == &policy.model());
  Grid g(4, 4);
  g.set_blocked({1, 1}, true);
  TrmWorkspace<float> ws;
  nn::Mat<float> logits;
  for (int r = 0; r < 4; ++r)
    for (int col = 0; col < 4; ++col) {
      if (g.blocked({r, col})) continue;
      const auto tokens = encode_state(g, {r, col}, {3, 3});
      trm_logits(m, tokens.data(), 1, ws, logits);
      Eigen::Index arg = 0;
      logits.row(0).maxCoeff(&arg);
      CHECK(static_cast<int>(policy.act(g, {r, col}, {3, 3})) == arg);
      CHECK(copy.act(g, {r, col}, {3, 3}) == policy.act(g, {r, col}, {3, 3}));
    }
  // A Nav2-style costmap view of the same map gives the same answer without a copy.
  std::vector<std::uint8_t> costmap(4 * 6, 0);
  costmap[1 * 6 + 1] = 254;
  const GridView view(costmap.data(), 4, 4, 6, 253);
  CHECK(policy.act(view, {0, 0}, {3, 3}) == policy.act(g, {0, 0}, {3, 3}));
  Grid big(5, 5);
  CHECK_THROWS_WITH(policy.act(big, {0, 0}, {4, 4}), Catch::Contains("trained on 4x4"));
  CHECK_THROWS_AS(policy.act(g, {0, 0}, {4, 4}), InvalidArgument);
}
