#include <catch2/catch.hpp>

#include <nanonav/train.hpp>

#include <filesystem>

using namespace nanonav;

namespace {

Dataset make_data(std::uint64_t seed, std::uint64_t maps) {
  GenerateOptions g;
  g.num_maps = maps;
  g.grid_size = 4;
  g.density = 0.15;
  g.seed = seed;
  g.labels = LabelMode::AllCells;
  return generate_dataset(g);
}

const Dataset& tiny_data(bool train) {
  static const Dataset tr = make_data(1, 40);
  static const Dataset va = make_data(2, 10);
  return train ? tr : va;
}

TrainOptions tiny_options(const std::string& dir) {
  TrainOptions o;
  o.model.grid_size = 4;
  o.model.dim = 8;
  o.model.depth = 1;
  o.model.recursion = 2;
  o.model.dropout = 0.1;
  o.batch_size = 16;
  o.epochs = 3;
  o.patience = 0;
  o.lr = 3e-3;
  o.seed = 5;
  o.threads = 1;
  o.checkpoint_dir = std::string(NANONAV_TEST_TMPDIR) + "/" + dir;
  std::filesystem::remove_all(o.checkpoint_dir);
  return o;
}

std::vector<float> flat(const Trm<float>& m) {
  std::vector<float> v;
  m.for_each_param([&](const nn::Param<float>& p) { v.insert(v.end(), p.value.data(), p.value.data() + p.value.size()); });
  return v;
}

}  // namespace

TEST_CASE("training lowers the loss and writes best, last and metrics", "[train]") {
  TrainOptions o = tiny_options("train_basic");
  o.epochs = 6;
  Trainer t(o, tiny_data(true), tiny_data(false));
  std::vector<std::string> lines;
  const StopReason why = t.run(nullptr, {}, [&](const EpochRecord& r) { lines.push_back(format_epoch_line(r, o.epochs)); });
  CHECK(why == StopReason::Finished);
  REQUIRE(t.history().size() == 6);
  CHECK(t.history().back().train_loss < t.history().front().train_loss);
  CHECK(t.history().back().val_loss < t.history().front().val_loss);
  CHECK(t.history().front().improved);
  CHECK(std::filesystem::exists(t.best_path()));
  CHECK(std::filesystem::exists(t.last_path()));
  CHECK(std::filesystem::exists(t.metrics_path()));
  REQUIRE(lines.size() == 6);
  CHECK_THAT(lines[0], Catch::StartsWith("Epoch 1/6 - Train Loss: "));
  CHECK_THAT(lines[0], Catch::Contains(", Train Acc: ") && Catch::Contains(" Val Loss: ") &&
                           Catch::Contains(", Val Acc: ") && Catch::EndsWith(" *"));
  // The best checkpoint holds the model of the epoch with the lowest validation loss.
  double best = 1e300;
  for (const auto& r : t.history()) best = std::min(best, r.val_loss);
  const Trm<float> m = load_model<float>(t.best_path());
  CHECK(evaluate(m, tiny_data(false), true, 1).loss == Approx(best).epsilon(1e-9));
}

TEST_CASE("a run stopped mid-epoch and resumed ends bit-identical to an uninterrupted one", "[train]") {
  TrainOptions o = tiny_options("train_full");
  Trainer full(o, tiny_data(true), tiny_data(false));
  REQUIRE(full.run() == StopReason::Finished);

  TrainOptions o2 = tiny_options("train_split");
  o2.max_steps = full.batches_per_epoch() + 3;  // stops 3 steps into epoch 2
  Trainer first(o2, tiny_data(true), tiny_data(false));
  CHECK(first.run() == StopReason::StepLimit);
  CHECK(first.history().size() == 1);

  // A second interruption through the stop flag, right after the first step of the resumed run.
  o2.max_steps = 0;
  Trainer second(o2, tiny_data(true), tiny_data(false));
  second.resume(second.last_path());
  std::atomic<bool> stop{true};
  CHECK(second.run(&stop) == StopReason::Interrupted);

  Trainer third(o2, tiny_data(true), tiny_data(false));
  third.resume(third.last_path());
  CHECK(third.run() == StopReason::Finished);
  CHECK(third.step() == full.step());
  CHECK(flat(third.model()) == flat(full.model()));
  REQUIRE(third.history().size() == full.history().size());
  for (std::size_t i = 0; i < full.history().size(); ++i) {
    CHECK(third.history()[i].train_loss == full.history()[i].train_loss);
    CHECK(third.history()[i].val_loss == full.history()[i].val_loss);
  }
  // Resuming a finished run does nothing more.
  Trainer fourth(o2, tiny_data(true), tiny_data(false));
  fourth.resume(fourth.last_path());
  CHECK(fourth.run() == StopReason::Finished);
  CHECK(fourth.step() == full.step());
}

TEST_CASE("training does not depend on the thread count", "[train]") {
  TrainOptions o = tiny_options("train_t1");
  o.epochs = 1;
  Trainer a(o, tiny_data(true), tiny_data(false));
  a.run();
  TrainOptions o2 = tiny_options("train_t2");
  o2.epochs = 1;
  o2.threads = 2;
  Trainer b(o2, tiny_data(true), tiny_data(false));
  b.run();
  CHECK(flat(a.model()) == flat(b.model()));
}

TEST_CASE("early stopping triggers after `patience` epochs without a better val loss", "[train]") {
  TrainOptions o = tiny_options("train_patience");
  o.epochs = 20;
  o.patience = 2;
  o.lr = 1e-30;  // the weights cannot move in float: the val loss never improves after epoch 1
  o.min_lr = 0;
  o.weight_decay = 0;
  Trainer t(o, tiny_data(true), tiny_data(false));
  CHECK(t.run() == StopReason::EarlyStopped);
  CHECK(t.history().size() == 3);
  CHECK(t.history()[0].improved);
  CHECK_FALSE(t.history()[1].improved);
}

TEST_CASE("bad options and mismatched data are refused", "[train]") {
  TrainOptions o = tiny_options("train_bad");
  o.model.grid_size = 8;
  CHECK_THROWS_WITH(Trainer(o, tiny_data(true), tiny_data(false)), Catch::Contains("--grid-size 4"));
  o = tiny_options("train_bad");
  o.batch_size = 0;
  CHECK_THROWS_AS(Trainer(o, tiny_data(true), tiny_data(false)), InvalidArgument);
  o = tiny_options("train_bad");
  o.lr = -1;
  CHECK_THROWS_AS(Trainer(o, tiny_data(true), tiny_data(false)), InvalidArgument);
  // Resuming with another seed is refused.
  o = tiny_options("train_bad");
  o.epochs = 1;
  Trainer t(o, tiny_data(true), tiny_data(false));
  t.run();
  TrainOptions o3 = o;
  o3.seed = 6;
  Trainer u(o3, tiny_data(true), tiny_data(false));
  CHECK_THROWS_WITH(u.resume(t.last_path()), Catch::Contains("same flags"));
  // A `best` checkpoint cannot be resumed (no optimiser state).
  Trainer v(o, tiny_data(true), tiny_data(false));
  CHECK_THROWS_AS(v.resume(t.best_path()), FormatError);
}

TEST_CASE("total_steps ends the run inside an epoch, validated, and a resume continues it exactly", "[train]") {
  TrainOptions o = tiny_options("train_total");
  Trainer probe(o, tiny_data(true), tiny_data(false));
  const std::int64_t per_epoch = probe.batches_per_epoch();
  REQUIRE(per_epoch > 6);
  o.total_steps = per_epoch + 5;  // one epoch and five batches of the second
  Trainer t(o, tiny_data(true), tiny_data(false));
  CHECK(t.total_steps() == per_epoch + 5);
  CHECK(t.run() == StopReason::Finished);
  CHECK(t.step() == per_epoch + 5);
  REQUIRE(t.history().size() == 2);  // the partial second epoch is validated and logged
  CHECK(std::filesystem::exists(t.best_path()));
  CHECK(t.history().back().lr == Approx(nn::cosine_lr(o.lr, static_cast<int>(per_epoch + 4), static_cast<int>(per_epoch + 5))));

  TrainOptions o2 = o;
  o2.checkpoint_dir += "_split";
  std::filesystem::remove_all(o2.checkpoint_dir);
  o2.max_steps = per_epoch + 2;
  {
    Trainer a(o2, tiny_data(true), tiny_data(false));
    CHECK(a.run() == StopReason::StepLimit);
  }
  o2.max_steps = 0;
  Trainer b(o2, tiny_data(true), tiny_data(false));
  b.resume(b.last_path());
  CHECK(b.run() == StopReason::Finished);
  CHECK(flat(b.model()) == flat(t.model()));
  // Resuming with another length is refused.
  TrainOptions o3 = o2;
  o3.total_steps = per_epoch + 6;
  Trainer c(o3, tiny_data(true), tiny_data(false));
  CHECK_THROWS_AS(c.resume(b.last_path()), InvalidArgument);
}

TEST_CASE("a time budget fixes the step count after the probe; that count replays the run", "[train]") {
  TrainOptions o = tiny_options("train_budget");
  o.epochs = 40;
  o.warmup_steps = static_cast<int>(TrainOptions::kBudgetProbeSteps);  // the probe lies inside the warm-up
  o.time_budget_seconds = 0.3;
  Trainer t(o, tiny_data(true), tiny_data(false));
  const std::int64_t full = t.total_steps();
  CHECK_FALSE(t.budget_planned());
  CHECK(t.run() == StopReason::Finished);
  CHECK(t.budget_planned());
  CHECK(t.total_steps() >= TrainOptions::kBudgetProbeSteps);
  CHECK(t.total_steps() <= full);
  CHECK(t.step() == t.total_steps());
  CHECK(std::filesystem::exists(t.best_path()));
  TrainOptions r = o;
  r.time_budget_seconds = 0;
  r.total_steps = t.total_steps();
  r.checkpoint_dir += "_replay";
  std::filesystem::remove_all(r.checkpoint_dir);
  Trainer replay(r, tiny_data(true), tiny_data(false));
  CHECK(replay.run() == StopReason::Finished);
  CHECK(flat(replay.model()) == flat(t.model()));
  // Both at once is a usage error.
  TrainOptions both = o;
  both.total_steps = 10;
  CHECK_THROWS_AS(both.validate(), InvalidArgument);
}
