#pragma once
/// A small seeded RNG whose streams are the same on every compiler and platform
/// (std::uniform_*_distribution is implementation-defined, so we do not use it).
#include <cmath>
#include <cstdint>

#include "assert.hpp"

namespace nanonav {

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state word, passes BigCrush, and any seed
/// (including 0) is fine. The state is a plain integer, so it can be saved in checkpoints.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) noexcept : state_(seed) {}

  /// A stream derived from (seed, stream) that does not overlap in practice with other streams:
  /// used to give map i of a dataset its own generator, independent of thread scheduling.
  static Rng stream(std::uint64_t seed, std::uint64_t stream) noexcept {
    Rng r(seed ^ (0x9E3779B97F4A7C15ull * (stream + 1)));
    r.next_u64();
    return Rng(r.next_u64() ^ stream);
  }

  /// The state's increment per draw.
  static constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  /// SplitMix64's output function: draw k (k = 1, 2, ...) of a generator in state s is
  /// mix(s + k * kGamma), so draws can be computed independently, e.g. in vector lanes.
  static constexpr std::uint64_t mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  std::uint64_t next_u64() noexcept { return mix(state_ += kGamma); }

  /// Uniform integer in [0, n), unbiased (Lemire's multiply-shift with rejection).
  std::uint64_t below(std::uint64_t n) noexcept {
    NANONAV_ASSERT(n > 0);
    __uint128_t m = static_cast<__uint128_t>(next_u64()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(next_u64()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  /// Standard normal (Box-Muller; uses std::log/std::cos, correctly rounded enough that
  /// streams agree across glibc versions to the last bit in practice).
  double normal() noexcept {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }

  std::uint64_t state() const noexcept { return state_; }
  void set_state(std::uint64_t s) noexcept { state_ = s; }

 private:
  std::uint64_t state_;
};

}  // namespace nanonav
