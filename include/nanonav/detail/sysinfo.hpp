#pragma once
/// Small facts about the running process for reports: peak resident memory, terminal or not,
/// and a one-line progress bar for long work (quiet when stderr is not a terminal).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace nanonav::detail {

/// Peak resident set size of this process in MiB (Linux: ru_maxrss is in KiB).
inline double peak_rss_mib() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

inline bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

/// A progress bar on stderr, redrawn at most 10 times a second; silent when stderr is not a
/// terminal (logs stay clean).
class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool enabled = stderr_is_terminal())
      : label_(std::move(label)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}
  ~ProgressBar() { finish(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Shows done/total with a rate in `unit`s per second, an ETA and an optional suffix.
  void update(double done, double total, const char* unit, const std::string& suffix = {}) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    drawn_ = true;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? done / secs : 0.0;
    const double frac = total > 0 ? done / total : 0.0;
    const int width = 28, fill = static_cast<int>(frac * width + 0.5);
    std::string bar(static_cast<std::size_t>(fill > width ? width : fill), '#');
    bar.resize(width, '.');
    const double eta = rate > 0 ? (total - done) / rate : 0.0;
    std::fprintf(stderr, "\r%s [%s] %3.0f%%  %.0f %s/s  ETA %02d:%02d %s\033[K", label_.c_str(), bar.c_str(),
                 100 * frac, rate, unit, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60, suffix.c_str());
    std::fflush(stderr);
  }
  /// Ends the line (called by the destructor too).
  void finish() {
    if (enabled_ && drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_{};
};

}  // namespace nanonav::detail
