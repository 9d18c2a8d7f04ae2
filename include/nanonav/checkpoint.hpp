#pragma once
/// Checkpoints: a TRM's parameters, optionally its AdamW state, and metadata (format version,
/// model config, training state) in one safetensors file, so PyTorch users can read the weights
/// with `safetensors.torch.load_file` and no code of ours. Byte layout: docs/formats.md.
///
/// Tensors: every parameter under its documented name (docs/model.md), in the model's scalar
/// type (F32 or F64); with an optimiser, "optimizer.m.<name>" and "optimizer.v.<name>" too.
/// Metadata: format = "nanonav-checkpoint", version, dtype, config (JSON of TrmConfig),
/// optimizer_step, and train_state (a JSON object owned by the trainer: epoch, step, seed,
/// metrics...). Writes are atomic; reads check everything and throw FormatError with a hint.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/safetensors.hpp"
#include "errors.hpp"
#include "nn/adamw.hpp"
#include "trm.hpp"

namespace nanonav {

/// The newest format this code reads and writes. Version 2 = a config that version-1 readers
/// would misread (input_injection on, or an aux head whose tensors they would not resume);
/// other checkpoints are still written as version 1 so that older nanonav builds keep reading
/// them.
inline constexpr int kCheckpointFormatVersion = 2;

/// The lowest format version that describes `c` faithfully.
inline int checkpoint_version_for(const TrmConfig& c) noexcept { return c.input_injection || c.has_aux() ? 2 : 1; }
inline constexpr const char* kCheckpointFormat = "nanonav-checkpoint";

inline nlohmann::json to_json(const TrmConfig& c) {
  return {{"grid_size", c.grid_size}, {"dim", c.dim},         {"depth", c.depth},
          {"recursion", c.recursion}, {"dropout", c.dropout}, {"grad_last_k", c.grad_last_k},
          {"encoding", to_string(c.encoding)}, {"input_injection", c.input_injection},
          {"aux_distance", c.aux_distance}};
}

/// Parses a config written by to_json; throws InvalidArgument naming the bad field.
inline TrmConfig trm_config_from_json(const nlohmann::json& j) {
  TrmConfig c;
  try {
    c.grid_size = j.at("grid_size").get<int>();
    c.dim = j.at("dim").get<int>();
    c.depth = j.at("depth").get<int>();
    c.recursion = j.at("recursion").get<int>();
    c.dropout = j.at("dropout").get<double>();
    c.grad_last_k = j.at("grad_last_k").get<int>();
    // Checkpoints written before the marked encoding existed have none: seed tokens.
    if (j.contains("encoding")) c.encoding = parse_encoding(j.at("encoding").get<std::string>());
    // ... and no input injection (the seed's model).
    if (j.contains("input_injection")) c.input_injection = j.at("input_injection").get<bool>();
    // ... and no aux head.
    if (j.contains("aux_distance")) c.aux_distance = j.at("aux_distance").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(std::string("model config: ") + e.what());
  }
  c.validate();
  return c;
}

/// What a checkpoint says about itself (read without loading any tensor).
struct CheckpointInfo {
  int version = 0;
  std::string dtype;               ///< "F32" or "F64"
  TrmConfig config;
  bool has_optimizer = false;
  std::int64_t optimizer_step = 0;
  nlohmann::json train_state;      ///< the trainer's object ({} if none)
};

namespace detail {

template <class S>
inline DType scalar_dtype() {
  return std::is_same_v<S, float> ? DType::F32 : DType::F64;
}

inline std::vector<std::uint64_t> u64_shape(const std::vector<std::int64_t>& s) {
  return {s.begin(), s.end()};
}

inline CheckpointInfo parse_checkpoint_info(const SafetensorsReader& r) {
  CheckpointInfo info;
  const auto fmt = r.metadata().find("format");
  if (fmt == r.metadata().end() || fmt->second != kCheckpointFormat)
    r.fail(8, "not a nanonav checkpoint (metadata 'format' is " +
                  (fmt == r.metadata().end() ? std::string("missing") : "'" + fmt->second + "'") + ")",
           "pass a file written by `train` (checkpoints/best.safetensors or last.safetensors)");
  try {
    info.version = std::stoi(r.meta("version"));
  } catch (const std::logic_error&) {
    r.fail(8, "metadata 'version' is not a number");
  }
  if (info.version < 1 || info.version > kCheckpointFormatVersion)
    r.fail(8, "checkpoint format version " + std::to_string(info.version) +
                  " is not supported (this nanonav reads 1.." + std::to_string(kCheckpointFormatVersion) + ")",
           "it was written by a newer nanonav: upgrade, or retrain");
  info.dtype = r.meta("dtype");
  if (info.dtype != "F32" && info.dtype != "F64") r.fail(8, "metadata 'dtype' must be F32 or F64");
  try {
    info.config = trm_config_from_json(nlohmann::json::parse(r.meta("config")));
    const auto ts = r.metadata().find("train_state");
    info.train_state = ts == r.metadata().end() ? nlohmann::json::object() : nlohmann::json::parse(ts->second);
    const auto st = r.metadata().find("optimizer_step");
    info.has_optimizer = st != r.metadata().end();
    if (info.has_optimizer) info.optimizer_step = std::stoll(st->second);
  } catch (const FormatError&) {
    throw;
  } catch (const std::exception& e) {
    r.fail(8, std::string("bad metadata: ") + e.what());
  }
  return info;
}

// Reads tensor `name` (F32 or F64 on disk) into dst, converting to S, and checks it is finite.
template <class S>
inline void read_param(SafetensorsReader& r, const std::string& name, const std::string& dtype,
                       const std::vector<std::int64_t>& shape, nn::Mat<S>& dst) {
  const DType dt = dtype == "F32" ? DType::F32 : DType::F64;
  const TensorInfo& t = r.expect(name, dt, shape);
  if (static_cast<std::int64_t>(t.numel()) != dst.size())
    r.fail(r.key_offset(name), "tensor '" + name + "' has " + std::to_string(t.numel()) +
                                   " elements, the model needs " + std::to_string(dst.size()));
  if (dt == scalar_dtype<S>()) {
    r.read(t, dst.data());
  } else if (dt == DType::F32) {
    std::vector<float> tmp = r.read_vector<float>(t);
    for (Eigen::Index i = 0; i < dst.size(); ++i) dst.data()[i] = static_cast<S>(tmp[i]);
  } else {
    std::vector<double> tmp = r.read_vector<double>(t);
    for (Eigen::Index i = 0; i < dst.size(); ++i) dst.data()[i] = static_cast<S>(tmp[i]);
  }
  for (Eigen::Index i = 0; i < dst.size(); ++i)
    if (!std::isfinite(static_cast<double>(dst.data()[i])))
      r.fail(r.data_start() + t.begin, "tensor '" + name + "' holds a non-finite value",
             "the training that wrote it diverged; use an earlier checkpoint");
}

}  // namespace detail

/// Writes model (+ optimiser state when `opt` is not null) + train_state atomically.
template <class S>
inline void save_checkpoint(const std::string& path, const Trm<S>& model,
                            const nn::AdamW<S>* opt = nullptr,
                            const nlohmann::json& train_state = nlohmann::json::object()) {
  detail::SafetensorsWriter w;
  w.set_metadata("format", kCheckpointFormat);
  w.set_metadata("version", std::to_string(checkpoint_version_for(model.config())));
  w.set_metadata("dtype", detail::dtype_name(detail::scalar_dtype<S>()));
  w.set_metadata("config", to_json(model.config()).dump());
  w.set_metadata("train_state", train_state.dump());
  std::size_t slot = 0;
  const bool with_opt = opt != nullptr && !opt->m().empty();
  model.for_each_param([&](const nn::Param<S>& p) {
    w.add(p.name, detail::scalar_dtype<S>(), detail::u64_shape(p.shape), p.value.data());
    if (with_opt) {
      w.add("optimizer.m." + p.name, detail::scalar_dtype<S>(), detail::u64_shape(p.shape), opt->m()[slot].data());
      w.add("optimizer.v." + p.name, detail::scalar_dtype<S>(), detail::u64_shape(p.shape), opt->v()[slot].data());
    }
    ++slot;
  });
  if (with_opt) w.set_metadata("optimizer_step", std::to_string(opt->step_count()));
  w.write(path);
}

/// Reads a checkpoint's metadata only. Throws IoError / FormatError.
inline CheckpointInfo read_checkpoint_info(const std::string& path) {
  detail::SafetensorsReader r(path);
  return detail::parse_checkpoint_info(r);
}

/// Loads parameters (and, when `opt` is not null, the optimiser state) into a model whose
/// config must equal the checkpoint's. Returns the checkpoint's info. Nothing in `model` or
/// `opt` changes unless the whole file is valid.
template <class S>
inline CheckpointInfo load_checkpoint(const std::string& path, Trm<S>& model,
                                      nn::AdamW<S>* opt = nullptr) {
  detail::SafetensorsReader r(path);
  CheckpointInfo info = detail::parse_checkpoint_info(r);
  if (to_json(info.config) != to_json(model.config()))
    r.fail(8, "the checkpoint's model config " + to_json(info.config).dump() +
                  " differs from the model's " + to_json(model.config()).dump(),
           "build the model from read_checkpoint_info(path).config, or use load_model()");
  if (opt && !info.has_optimizer)
    r.fail(8, "the checkpoint holds no optimiser state", "it was saved for inference only; cannot resume from it");
  // Read into copies first so that a bad tensor halfway leaves the model untouched.
  std::vector<nn::Mat<S>> values, ms, vs;
  model.for_each_param([&](const nn::Param<S>& p) {
    values.emplace_back(p.value.rows(), p.value.cols());
    detail::read_param(r, p.name, info.dtype, p.shape, values.back());
    if (opt) {
      ms.emplace_back(p.value.rows(), p.value.cols());
      vs.emplace_back(p.value.rows(), p.value.cols());
      detail::read_param(r, "optimizer.m." + p.name, info.dtype, p.shape, ms.back());
      detail::read_param(r, "optimizer.v." + p.name, info.dtype, p.shape, vs.back());
    }
  });
  std::size_t slot = 0;
  model.for_each_param([&](nn::Param<S>& p) { p.value = std::move(values[slot++]); });
  if (opt) {
    opt->m() = std::move(ms);
    opt->v() = std::move(vs);
    opt->set_step_count(info.optimizer_step);
  }
  return info;
}

/// Inference-only load (for robots): builds the model from the checkpoint's own config and
/// reads only the parameters.
template <class S = float>
inline Trm<S> load_model(const std::string& path) {
  const CheckpointInfo info = read_checkpoint_info(path);
  Trm<S> model(info.config);
  load_checkpoint(path, model);
  return model;
}

}  // namespace nanonav
