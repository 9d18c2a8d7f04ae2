#pragma once
/// Tensors and trainable parameters of nanonav's hand-written networks.
///
/// The backward contract (every layer in nn/ follows it): `backward` ADDS (+=) into the
/// gradient of its input and into the `grad` of its parameters; it never overwrites. The TRM
/// applies the same weights on every recursion step, so their gradients must accumulate; the
/// caller zeroes gradients once per optimiser step.
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

namespace nanonav::nn {

/// A dense row-major matrix: activations are (rows, features) blocks, weights keep PyTorch's
/// (out, in) element order so they can be copied to/from a state_dict as they are.
template <class S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A non-owning row-major view of contiguous memory (e.g. the (T, B*dim) view of a
/// (T*B, dim) activation block).
template <class S>
using MatMap = Eigen::Map<Mat<S>>;
template <class S>
using ConstMatMap = Eigen::Map<const Mat<S>>;

/// One trainable tensor.
template <class S>
struct Param {
  static_assert(std::is_floating_point_v<S>, "nn::Param needs a floating-point scalar");
  std::string name;                  ///< documented name, e.g. "blocks.0.tok_ff.w1.weight"
  std::vector<std::int64_t> shape;   ///< PyTorch shape (a bias is {n})
  Mat<S> value, grad;                ///< row-major storage, PyTorch's element order
  bool decay = true;                 ///< false for biases / norm gains / embeddings

  Param() = default;
  /// A zero tensor of `rows` x `cols` storage whose PyTorch shape is `torch_shape`.
  Param(std::string n, std::vector<std::int64_t> torch_shape, Eigen::Index rows,
        Eigen::Index cols, bool weight_decay)
      : name(std::move(n)), shape(std::move(torch_shape)), value(Mat<S>::Zero(rows, cols)),
        grad(Mat<S>::Zero(rows, cols)), decay(weight_decay) {}

  Eigen::Index size() const noexcept { return value.size(); }
};

}  // namespace nanonav::nn
