#pragma once
/// Crash-safe file writes (POSIX): the bytes go to a temporary file in the destination's
/// folder, which is flushed to disk (fsync) and then renamed over the destination, so a reader
/// sees either the old file or the complete new one, never a half-written file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "../errors.hpp"

namespace nanonav {
namespace detail {

/// A file being written atomically. Nothing appears at `path` until commit() succeeds; if the
/// object is destroyed before that, the temporary file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    // pid + thread hash + attempt: unique among concurrent writers without global state.
    const std::size_t tid = std::hash<std::thread::id>{}(std::this_thread::get_id());
    for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
      tmp_ = path_ + ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." +
             std::to_string(tid % 1000000007u) + "." + std::to_string(attempt);
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0)
      throw IoError(path_, std::string("cannot create a temporary file next to it: ") +
                               std::strerror(errno));
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }

  /// Appends n bytes. Throws IoError (e.g. disk full).
  void write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ::ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw IoError(path_, std::string("write failed: ") + std::strerror(errno));
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  /// Flushes the data to disk and moves the file into place. Throws IoError.
  void commit() {
    if (::fsync(fd_) != 0)
      throw IoError(path_, std::string("fsync failed: ") + std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      ::unlink(tmp_.c_str());
      throw IoError(path_, std::string("close failed: ") + std::strerror(errno));
    }
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp_.c_str());
      throw IoError(path_, std::string("rename failed: ") + std::strerror(err));
    }
    // Make the rename itself durable; failure here leaves a complete file, so it is ignored.
    const auto slash = path_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
};

/// Writes `size` bytes to `path` atomically. Throws IoError.
inline void write_file_atomically(const std::string& path, const void* data, std::size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

}  // namespace detail
}  // namespace nanonav
