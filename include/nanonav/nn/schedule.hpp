#pragma once
/// Learning-rate schedules.
#include <algorithm>
#include <cmath>

namespace nanonav::nn {

/// Cosine annealing with optional linear warm-up, for optimiser step `step` (0-based) of
/// `total`. During the first `warmup` steps the rate rises linearly, base * (step + 1) / warmup;
/// then it follows min_lr + (base - min_lr) * (1 + cos(pi * s / (total - warmup))) / 2 with
/// s = step - warmup (torch's CosineAnnealingLR with T_max = total - warmup, eta_min = min_lr),
/// and stays at min_lr from step `total` on.
inline double cosine_lr(double base, int step, int total, int warmup = 0, double min_lr = 0.0) {
  warmup = std::max(warmup, 0);
  if (step < warmup) return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int span = std::max(total - warmup, 1);
  const double progress = std::min(static_cast<double>(step - warmup) / span, 1.0);
  return min_lr + (base - min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
}

}  // namespace nanonav::nn
