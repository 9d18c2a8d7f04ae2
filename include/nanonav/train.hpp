#pragma once
/// The training loop: behavioural cloning of A* with AdamW, cosine schedule, clipping, early
/// stopping on validation loss, best/last checkpoints, exact resume, and per-epoch metrics.
///
/// Determinism: everything random is a function of (seed, epoch) or (seed, step): epoch e's
/// sample order is a Fisher-Yates shuffle drawn from Rng::stream(seed, e), and step s's dropout
/// masks come from seed ^ s. So a run stopped anywhere and resumed from `last` continues the
/// same trajectory as an uninterrupted run, bit for bit, for any thread count.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint.hpp"
#include "dataset.hpp"
#include "detail/atomic_file.hpp"
#include "nn/adamw.hpp"
#include "nn/schedule.hpp"
#include "trm.hpp"

namespace nanonav {

/// Everything the trainer needs besides the data.
struct TrainOptions {
  TrmConfig model;
  int batch_size = 64;
  int epochs = 100;
  int patience = 15;            ///< epochs without a better val loss before stopping (0: never)
  double lr = 5e-4;
  double min_lr = 0.0;          ///< cosine floor
  int warmup_steps = 0;         ///< linear warm-up steps
  double weight_decay = 0.01;
  bool exempt_no_decay = false; ///< no decay on biases, norm gains, embeddings
  double clip = 1.0;            ///< global gradient-norm clip (0: off)
  int threads = 1;
  std::uint64_t seed = 0;
  bool mask_labels = true;      ///< learn all optimal actions (mask) or the single A* label
  std::string checkpoint_dir = "checkpoints";
  double time_limit_seconds = 0;  ///< stop (and save `last`) after this long; 0: no limit
  std::int64_t max_steps = 0;     ///< stop (and save `last`) after this global step; 0: none
  /// The run's length in optimiser steps, schedule included (0: epochs x steps per epoch; at
  /// most that). A run that ends inside an epoch validates that partial epoch like a whole one.
  std::int64_t total_steps = 0;
  /// Fit the whole run, schedule and final validation included, into this much wall time
  /// (0: off). After the first kBudgetProbeSteps steps the measured speed fixes total_steps
  /// (reported by Trainer::total_steps(); passing it as total_steps replays the run exactly
  /// when the warm-up is at least as long as the probe, since the warm-up does not depend on
  /// the schedule's length).
  double time_budget_seconds = 0;
  static constexpr std::int64_t kBudgetProbeSteps = 100;

  /// Throws InvalidArgument naming the first bad field.
  void validate() const {
    model.validate();
    const auto bad = [](const std::string& what) { throw InvalidArgument("train: " + what); };
    if (batch_size < 1 || batch_size > 65536) bad("batch size must be in 1..65536");
    if (epochs < 1) bad("epochs must be >= 1");
    if (patience < 0) bad("patience must be >= 0");
    if (!(lr > 0) || !(min_lr >= 0) || min_lr > lr) bad("need lr > 0 and 0 <= min_lr <= lr");
    if (warmup_steps < 0) bad("warmup must be >= 0");
    if (!(weight_decay >= 0)) bad("weight decay must be >= 0");
    if (!(clip >= 0)) bad("clip must be >= 0");
    if (threads < 1 || threads > 256) bad("threads must be in 1..256");
    if (!(time_limit_seconds >= 0)) bad("time limit must be >= 0");
    if (total_steps < 0) bad("total steps must be >= 0");
    if (!(time_budget_seconds >= 0)) bad("time budget must be >= 0");
    if (total_steps > 0 && time_budget_seconds > 0) bad("give a total step count or a time budget, not both");
  }
};

/// One line of the training log.
struct EpochRecord {
  int epoch = 0;  ///< 1-based
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, lr = 0, seconds = 0;
  bool improved = false;  ///< new best validation loss (the `*` of the log line)
};

inline nlohmann::json to_json(const EpochRecord& r) {
  return {{"epoch", r.epoch},       {"train_loss", r.train_loss}, {"train_acc", r.train_acc},
          {"val_loss", r.val_loss}, {"val_acc", r.val_acc},       {"lr", r.lr},
          {"seconds", r.seconds},   {"improved", r.improved}};
}
inline EpochRecord epoch_record_from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch").get<int>();
  r.train_loss = j.at("train_loss").get<double>();
  r.train_acc = j.at("train_acc").get<double>();
  r.val_loss = j.at("val_loss").get<double>();
  r.val_acc = j.at("val_acc").get<double>();
  r.lr = j.at("lr").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.improved = j.at("improved").get<bool>();
  return r;
}

/// The seed's log line: "Epoch 45/100 - Train Loss: 0.1234, Train Acc: 0.9567 Val Loss:
/// 0.2345, Val Acc: 0.9123 *".
inline std::string format_epoch_line(const EpochRecord& r, int epochs) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "Epoch %d/%d - Train Loss: %.4f, Train Acc: %.4f Val Loss: %.4f, Val Acc: %.4f%s",
                r.epoch, epochs, r.train_loss, r.train_acc, r.val_loss, r.val_acc,
                r.improved ? " *" : "");
  return buf;
}

/// Why run() returned.
enum class StopReason { Finished, EarlyStopped, Interrupted, TimeLimit, StepLimit };

inline const char* to_string(StopReason r) noexcept {
  switch (r) {
    case StopReason::Finished: return "finished";
    case StopReason::EarlyStopped: return "early-stopped";
    case StopReason::Interrupted: return "interrupted";
    case StopReason::TimeLimit: return "time-limit";
    case StopReason::StepLimit: return "step-limit";
  }
  return "?";
}

/// Progress within an epoch, for a progress bar.
struct TrainProgress {
  int epoch = 0;            ///< 1-based
  std::int64_t batch = 0;   ///< batches done in this epoch
  std::int64_t batches = 0; ///< batches per epoch
  double samples_per_second = 0;
  double loss = 0;          ///< running mean train loss of the epoch
};

/// Loss and accuracy of a model over a dataset, dropout off.
struct EvalResult {
  double loss = 0;      ///< mean cross-entropy against the mask (or the single label)
  double accuracy = 0;  ///< share of samples whose arg-max action is one of the optimal ones
  std::size_t count = 0;
};

/// Evaluates in fixed chunks of `chunk` samples summed in order: the same result for any
/// thread count.
template <class S>
inline EvalResult evaluate(const Trm<S>& model, const Dataset& ds, bool mask_labels, int threads,
                           int chunk = 256) {
  EvalResult out;
  const std::size_t n = ds.size(), T = ds.seq_len();
  if (n == 0) return out;
  const std::int64_t chunks = static_cast<std::int64_t>((n + chunk - 1) / chunk);
  std::vector<double> loss(static_cast<std::size_t>(chunks));
  std::vector<long long> correct(static_cast<std::size_t>(chunks));
#pragma omp parallel num_threads(threads)
  {
    TrmWorkspace<S> ws;
    nn::Mat<S> logits;
    std::vector<std::uint8_t> labels;
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::size_t b = static_cast<std::size_t>(c) * chunk;
      const int m = static_cast<int>(std::min<std::size_t>(chunk, n - b));
      trm_logits(model, ds.tokens.data() + b * T, m, ws, logits);
      labels.resize(static_cast<std::size_t>(m));
      long long k = 0;
      for (int i = 0; i < m; ++i) {
        labels[i] = mask_labels ? ds.mask[b + i] : nn::label_mask(ds.action[b + i]);
        Eigen::Index arg = 0;
        logits.row(i).maxCoeff(&arg);
        k += (ds.mask[b + i] >> arg) & 1u;
      }
      loss[static_cast<std::size_t>(c)] =
          nn::masked_cross_entropy<S>(logits, labels.data(), nullptr, 0.0, nullptr).weighted_loss;
      correct[static_cast<std::size_t>(c)] = k;
    }
  }
  double l = 0;
  long long k = 0;
  for (std::int64_t c = 0; c < chunks; ++c) {
    l += loss[static_cast<std::size_t>(c)];
    k += correct[static_cast<std::size_t>(c)];
  }
  out.count = n;
  out.loss = l / static_cast<double>(n);
  out.accuracy = static_cast<double>(k) / static_cast<double>(n);
  return out;
}

/// Trains a TRM (in float) on a dataset, validating on another.
class Trainer {
 public:
  using Model = Trm<float>;

  Trainer(const TrainOptions& opt, const Dataset& train, const Dataset& val)
      : opt_(opt), train_(train), val_(val), model_(opt.model),
        adam_(adam_config(opt)) {
    opt_.validate();
    const auto check = [&](const Dataset& ds, const char* which) {
      if (ds.empty()) throw InvalidArgument(std::string("train: the ") + which + " set is empty");
      if (ds.info.grid_size != opt_.model.grid_size)
        throw InvalidArgument(std::string("train: the ") + which + " set is for " +
                              std::to_string(ds.info.grid_size) + "x" + std::to_string(ds.info.grid_size) +
                              " maps but the model is configured for " +
                              std::to_string(opt_.model.grid_size) + "x" + std::to_string(opt_.model.grid_size) +
                              " (pass --grid-size " + std::to_string(ds.info.grid_size) + ")");
      if (ds.info.encoding != opt_.model.encoding)
        throw InvalidArgument(std::string("train: the ") + which + " set has " +
                              to_string(ds.info.encoding) + " tokens but the model reads " +
                              to_string(opt_.model.encoding) + " tokens");
    };
    check(train_, "training");
    check(val_, "validation");
    model_.init(opt_.seed);
    batches_ = static_cast<std::int64_t>((train_.size() + opt_.batch_size - 1) / opt_.batch_size);
    total_steps_ = batches_ * opt_.epochs;
    if (opt_.total_steps > 0) total_steps_ = std::min(total_steps_, opt_.total_steps);
  }

  /// Continues from a `last` checkpoint written by this trainer with the same options.
  void resume(const std::string& path) {
    const CheckpointInfo info = load_checkpoint(path, model_, &adam_);
    const nlohmann::json& s = info.train_state;
    try {
      if (s.at("seed").get<std::uint64_t>() != opt_.seed || s.at("batches").get<std::int64_t>() != batches_ ||
          s.at("epochs").get<int>() != opt_.epochs)
        throw InvalidArgument("--resume: " + path +
                              " was written with another seed, dataset size, batch size or epoch count; "
                              "resume with the same flags as the run that wrote it");
      // Checkpoints from before total_steps existed ran all their epochs.
      const std::int64_t saved_total = s.value("total_steps", batches_ * opt_.epochs);
      if (saved_total != total_steps_ && opt_.time_budget_seconds <= 0)
        throw InvalidArgument("--resume: " + path + " was written by a run of " + std::to_string(saved_total) +
                              " steps, not " + std::to_string(total_steps_) +
                              "; resume with the same flags as the run that wrote it");
      total_steps_ = saved_total;
      planned_ = s.value("planned", false);
      epoch_ = s.at("epoch").get<int>();
      batch_ = s.at("batch").get<std::int64_t>();
      step_ = s.at("step").get<std::int64_t>();
      best_val_ = s.at("best_val_loss").is_null() ? std::numeric_limits<double>::infinity()
                                                  : s.at("best_val_loss").get<double>();
      lr_ = s.value("lr", 0.0);
      bad_epochs_ = s.at("bad_epochs").get<int>();
      part_loss_ = s.at("partial_loss").get<double>();
      part_correct_ = s.at("partial_correct").get<long long>();
      part_count_ = s.at("partial_count").get<long long>();
      done_ = s.at("done").get<bool>();
      history_.clear();
      for (const auto& r : s.at("history")) history_.push_back(epoch_record_from_json(r));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(path, 8, std::string("bad train_state: ") + e.what(),
                        "this checkpoint cannot be resumed; it may be a `best` checkpoint");
    }
  }

  /// Trains until the epochs are done, early stopping, `*stop` turning true (checked after
  /// every step), or a time/step limit. Saves `last` on every exit and after every epoch,
  /// `best` whenever the validation loss improves.
  StopReason run(const std::atomic<bool>* stop = nullptr,
                 const std::function<void(const TrainProgress&)>& on_progress = {},
                 const std::function<void(const EpochRecord&)>& on_epoch = {}) {
    std::filesystem::create_directories(opt_.checkpoint_dir);
    if (done_) return StopReason::Finished;
    TrmTrainer<float> trainer(model_, opt_.threads);
    const std::size_t T = train_.seq_len();
    std::vector<std::uint8_t> tokens(static_cast<std::size_t>(opt_.batch_size) * T), masks(opt_.batch_size);
    // With an aux head: every sample's distance-to-goal field, derived from its tokens.
    const int n = model_.config().grid_size, cells = n * n;
    const bool aux = model_.config().has_aux();
    std::vector<std::uint16_t> aux_targets(aux ? static_cast<std::size_t>(opt_.batch_size) * cells : 0);
    DistanceWorkspace dws;
    std::vector<std::uint32_t> order;
    const auto t_start = std::chrono::steady_clock::now();
    const auto since = [](std::chrono::steady_clock::time_point t) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    const std::int64_t first_step = step_;
    while (epoch_ < opt_.epochs && step_ < total_steps_) {
      const auto t_epoch = std::chrono::steady_clock::now();
      const std::int64_t first_batch = batch_;
      shuffled_order(epoch_, order);
      StopReason pending = StopReason::Finished;
      while (batch_ < batches_ && step_ < total_steps_ && pending == StopReason::Finished) {
        const std::size_t b0 = static_cast<std::size_t>(batch_) * opt_.batch_size;
        const int m = static_cast<int>(std::min<std::size_t>(opt_.batch_size, train_.size() - b0));
        for (int i = 0; i < m; ++i) {
          const std::uint32_t k = order[b0 + i];
          std::copy_n(train_.sample_tokens(k), T, tokens.data() + static_cast<std::size_t>(i) * T);
          masks[i] = opt_.mask_labels ? train_.mask[k] : nn::label_mask(train_.action[k]);
          if (aux)
            state_goal_distances(n, train_.sample_tokens(k), dws, aux_targets.data() + static_cast<std::size_t>(i) * cells);
        }
        model_.zero_grad();
        const StepStats st = trainer.loss_and_grad(tokens.data(), masks.data(), nullptr, m,
                                                   opt_.seed ^ (0xD1B54A32D192ED03ull * static_cast<std::uint64_t>(step_ + 1)),
                                                   true, aux ? aux_targets.data() : nullptr);
        if (opt_.clip > 0) nn::clip_grad_norm(model_, opt_.clip);
        lr_ = nn::cosine_lr(opt_.lr, static_cast<int>(step_), static_cast<int>(total_steps_),
                            opt_.warmup_steps, opt_.min_lr);
        adam_.step(model_, lr_);
        ++step_;
        ++batch_;
        if (opt_.time_budget_seconds > 0 && !planned_ && step_ - first_step == TrainOptions::kBudgetProbeSteps)
          plan_budget(since(t_start), step_ - first_step);
        part_loss_ += st.loss * st.count;
        part_correct_ += st.correct;
        part_count_ += st.count;
        if (on_progress) {
          const double secs = since(t_epoch);
          on_progress({epoch_ + 1, batch_, std::min(batches_, total_steps_ - step_ + batch_),
                       secs > 0 ? static_cast<double>((batch_ - first_batch) * opt_.batch_size) / secs : 0.0,
                       part_loss_ / static_cast<double>(std::max<long long>(1, part_count_))});
        }
        if (stop && stop->load()) pending = StopReason::Interrupted;
        else if (opt_.time_limit_seconds > 0 && since(t_start) >= opt_.time_limit_seconds) pending = StopReason::TimeLimit;
        else if (opt_.max_steps > 0 && step_ >= opt_.max_steps) pending = StopReason::StepLimit;
      }
      if (batch_ == batches_ || step_ == total_steps_) {  // the epoch is complete (or the run): validate, log, maybe stop early
        const bool early = finish_epoch(since(t_epoch), on_epoch);
        ++epoch_;
        batch_ = 0;
        if (early) {
          done_ = true;
          save_last();
          return StopReason::EarlyStopped;
        }
      }
      if (pending != StopReason::Finished || epoch_ == opt_.epochs || step_ == total_steps_) {
        done_ = epoch_ == opt_.epochs || step_ == total_steps_;
        save_last();
        if (pending != StopReason::Finished) return pending;
      } else {
        save_last();
      }
    }
    return StopReason::Finished;
  }

  const Model& model() const noexcept { return model_; }
  Model& model() noexcept { return model_; }
  const std::vector<EpochRecord>& history() const noexcept { return history_; }
  std::int64_t step() const noexcept { return step_; }
  std::int64_t batches_per_epoch() const noexcept { return batches_; }
  /// The run's length in steps: epochs x batches_per_epoch() unless shortened by total_steps
  /// or, once planned, by the time budget.
  std::int64_t total_steps() const noexcept { return total_steps_; }
  /// With a time budget: whether the probe has fixed total_steps() yet.
  bool budget_planned() const noexcept { return planned_; }
  std::string best_path() const { return opt_.checkpoint_dir + "/best.safetensors"; }
  std::string last_path() const { return opt_.checkpoint_dir + "/last.safetensors"; }
  std::string metrics_path() const { return opt_.checkpoint_dir + "/metrics.csv"; }

 private:
  static nn::AdamWConfig adam_config(const TrainOptions& o) {
    nn::AdamWConfig c;
    c.weight_decay = o.weight_decay;
    c.exempt_no_decay = o.exempt_no_decay;
    return c;
  }

  void shuffled_order(int epoch, std::vector<std::uint32_t>& order) const {
    order.resize(train_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::uint32_t>(i);
    Rng rng = Rng::stream(opt_.seed ^ 0x5851F42D4C957F2Dull, static_cast<std::uint64_t>(epoch));
    for (std::size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[static_cast<std::size_t>(rng.below(i))]);
  }

  // Fixes total_steps_ from the speed of the last `steps` steps (taking `elapsed` seconds of
  // this run): as many more as fit in what is left of the budget, less an estimate of the
  // validations at the epoch ends they reach and at the end (a forward pass costs about a third
  // of a training step per sample).
  void plan_budget(double elapsed, std::int64_t steps) {
    planned_ = true;
    const double steps_per_s = static_cast<double>(steps) / std::max(elapsed, 1e-9);
    const double val_s = static_cast<double>(val_.size()) / (3.0 * steps_per_s * opt_.batch_size);
    const std::int64_t all = batches_ * opt_.epochs;
    const auto fit = [&](std::int64_t validations) {
      const double left = opt_.time_budget_seconds - elapsed - static_cast<double>(validations) * val_s;
      return std::min(all, step_ + static_cast<std::int64_t>(std::max(0.0, left) * steps_per_s));
    };
    // Epoch ends strictly before the last step each cost a validation too; the last step's
    // validation is the final one.
    const auto validations = [&](std::int64_t last) { return 1 + (last - 1) / batches_ - step_ / batches_; };
    std::int64_t k = fit(1);
    k = fit(validations(k));
    total_steps_ = std::max(k, step_);
  }

  // Validates, logs, saves `best` when better; true when early stopping triggers.
  bool finish_epoch(double seconds, const std::function<void(const EpochRecord&)>& on_epoch) {
    EpochRecord r;
    r.epoch = epoch_ + 1;
    r.train_loss = part_loss_ / std::max<long long>(1, part_count_);
    r.train_acc = static_cast<double>(part_correct_) / std::max<long long>(1, part_count_);
    const auto ev = evaluate(model_, val_, opt_.mask_labels, opt_.threads);
    r.val_loss = ev.loss;
    r.val_acc = ev.accuracy;
    r.lr = lr_;
    r.seconds = seconds;
    r.improved = r.val_loss < best_val_;
    part_loss_ = 0;
    part_correct_ = part_count_ = 0;
    if (r.improved) {
      best_val_ = r.val_loss;
      bad_epochs_ = 0;
    } else {
      ++bad_epochs_;
    }
    history_.push_back(r);
    if (r.improved) save_checkpoint(best_path(), model_, static_cast<const nn::AdamW<float>*>(nullptr), state_json(true));
    write_metrics();
    if (on_epoch) on_epoch(r);
    return opt_.patience > 0 && bad_epochs_ >= opt_.patience;
  }

  nlohmann::json state_json(bool best) const {
    nlohmann::json h = nlohmann::json::array();
    for (const auto& r : history_) h.push_back(to_json(r));
    return {{"seed", opt_.seed},
            {"epochs", opt_.epochs},
            {"batches", batches_},
            {"batch_size", opt_.batch_size},
            {"epoch", epoch_},
            {"batch", batch_},
            {"step", step_},
            {"best_val_loss", std::isfinite(best_val_) ? nlohmann::json(best_val_) : nlohmann::json()},
            {"bad_epochs", bad_epochs_},
            {"partial_loss", part_loss_},
            {"partial_correct", part_correct_},
            {"partial_count", part_count_},
            {"done", done_},
            {"lr", lr_},
            {"total_steps", total_steps_},
            {"planned", planned_},
            {"kind", best ? "best" : "last"},
            {"mask_labels", opt_.mask_labels},
            {"history", h}};
  }

  void save_last() { save_checkpoint(last_path(), model_, &adam_, state_json(false)); }

  void write_metrics() const {
    std::string csv = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,improved\n";
    char line[256];
    for (const auto& r : history_) {
      std::snprintf(line, sizeof line, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.2f,%d\n", r.epoch, r.train_loss,
                    r.train_acc, r.val_loss, r.val_acc, r.lr, r.seconds, r.improved ? 1 : 0);
      csv += line;
    }
    detail::write_file_atomically(metrics_path(), csv.data(), csv.size());
  }

  TrainOptions opt_;
  const Dataset& train_;
  const Dataset& val_;
  Model model_;
  nn::AdamW<float> adam_;
  std::int64_t batches_ = 0, total_steps_ = 0;
  int epoch_ = 0;
  std::int64_t batch_ = 0, step_ = 0;
  double best_val_ = std::numeric_limits<double>::infinity();
  double lr_ = 0;
  int bad_epochs_ = 0;
  double part_loss_ = 0;
  long long part_correct_ = 0, part_count_ = 0;
  bool done_ = false;
  bool planned_ = false;  // the time budget has fixed total_steps_
  std::vector<EpochRecord> history_;
};

}  // namespace nanonav
