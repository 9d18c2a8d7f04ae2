#pragma once
/// The robot-facing facade: a trained TRM behind one call, `act(map, current, goal)`.
///
/// Threads: a Policy holds the weights by shared pointer (read-only) and its own workspace.
/// Copy it once per thread: the copies share the weights and never share a workspace. One
/// Policy object must not be used from two threads at once.
#include <memory>
#include <string>
#include <vector>

#include "checkpoint.hpp"
#include "encoding.hpp"
#include "grid.hpp"
#include "trm.hpp"

namespace nanonav {

class Policy {
 public:
  /// Loads a checkpoint for inference only (optimiser state, if any, is not read).
  explicit Policy(const std::string& checkpoint_path)
      : model_(std::make_shared<const Trm<float>>(load_model<float>(checkpoint_path))) {
    prepare();
  }
  /// Wraps weights already in memory (shared, never modified).
  explicit Policy(std::shared_ptr<const Trm<float>> model) : model_(std::move(model)) {
    NANONAV_ASSERT(model_ != nullptr);
    prepare();
  }
  /// A copy shares the weights and gets a workspace of its own (one copy per thread).
  Policy(const Policy& other) : model_(other.model_) { prepare(); }
  Policy& operator=(const Policy& other) {
    if (this != &other) {
      model_ = other.model_;
      prepare();
    }
    return *this;
  }
  Policy(Policy&&) noexcept = default;
  Policy& operator=(Policy&&) noexcept = default;

  /// The side N of the square maps the model was trained on.
  int grid_size() const noexcept { return model_->config().grid_size; }
  const Trm<float>& model() const noexcept { return *model_; }

  /// The model's action (arg-max of its logits) for an agent at `current` heading to `goal`.
  /// Allocation-free after construction. Throws InvalidArgument when the map is not N x N for
  /// the model's N, when a position is off the map, or (model trained on the marked encoding)
  /// when the agent or the goal is on a blocked cell — never a silent wrong answer.
  Action act(const GridView& map, Pos current, Pos goal) {
    const float* z = logits(map, current, goal);
    int best = 0;
    for (int a = 1; a < kNumActions; ++a)
      if (z[a] > z[best]) best = a;
    return static_cast<Action>(best);
  }

  /// The 5 logits (Up, Down, Left, Right, Stay) for the state; valid until the next call.
  const float* logits(const GridView& map, Pos current, Pos goal) {
    const int n = grid_size();
    if (map.width != n || map.height != n)
      throw InvalidArgument("Policy: the model was trained on " + std::to_string(n) + "x" +
                            std::to_string(n) + " maps but got a " + std::to_string(map.width) +
                            "x" + std::to_string(map.height) +
                            " map; crop or resample the costmap to the model's size");
    encode_state(map, current, goal, tokens_.data(), model_->config().encoding);
    trm_logits(*model_, tokens_.data(), 1, ws_, logits_);
    return logits_.data();
  }

 private:
  void prepare() {
    tokens_.assign(static_cast<std::size_t>(tokens_per_state(grid_size())), 0);
    ws_ = TrmWorkspace<float>();
    // One warm-up call sizes the workspace, so act() does not allocate afterwards.
    Grid g(grid_size(), grid_size());
    encode_state(g, {0, 0}, {0, 0}, tokens_.data(), model_->config().encoding);
    trm_logits(*model_, tokens_.data(), 1, ws_, logits_);
  }

  std::shared_ptr<const Trm<float>> model_;
  TrmWorkspace<float> ws_;
  nn::Mat<float> logits_;
  std::vector<std::uint8_t> tokens_;
};

}  // namespace nanonav
