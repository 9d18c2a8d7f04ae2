#pragma once
/// The safetensors file format (Hugging Face), enough of it for datasets and checkpoints.
///
/// Layout: bytes [0, 8) hold N, the header length, as a little-endian uint64; bytes [8, 8 + N)
/// hold a JSON object (UTF-8, padded with spaces so that 8 + N is a multiple of 8):
///   {"__metadata__": {"key": "value", ...},
///    "name": {"dtype": "U8", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
/// then the data buffer from byte 8 + N to the end of the file. Offsets are relative to the
/// start of the buffer; tensors are row-major, little-endian, do not overlap and together
/// cover the buffer exactly (so the file size is 8 + N + the last end).
///
/// The reader checks all of this before it allocates anything sized by the file, and reports
/// every violation as a FormatError naming the file, a byte offset and a hint.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../errors.hpp"
#include "assert.hpp"
#include "atomic_file.hpp"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "nanonav's safetensors I/O copies raw bytes and needs a little-endian host");
#endif

namespace nanonav {
namespace detail {

/// Element types we read and write (safetensors names: U8 I32 U32 I64 F32 F64).
enum class DType : std::uint8_t { U8, I32, U32, I64, F32, F64 };

inline const char* dtype_name(DType d) noexcept {
  switch (d) {
    case DType::U8: return "U8";
    case DType::I32: return "I32";
    case DType::U32: return "U32";
    case DType::I64: return "I64";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
  }
  return "?";
}

inline std::size_t dtype_size(DType d) noexcept {
  switch (d) {
    case DType::U8: return 1;
    case DType::I32:
    case DType::U32:
    case DType::F32: return 4;
    case DType::I64:
    case DType::F64: return 8;
  }
  return 0;
}

/// Parses a safetensors dtype name; false for names we do not support.
inline bool parse_dtype(const std::string& s, DType& out) noexcept {
  for (DType d : {DType::U8, DType::I32, DType::U32, DType::I64, DType::F32, DType::F64})
    if (s == dtype_name(d)) {
      out = d;
      return true;
    }
  return false;
}

/// The DType of a C++ element type.
template <class T>
constexpr DType dtype_of() noexcept {
  static_assert(std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int32_t> ||
                    std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::int64_t> ||
                    std::is_same_v<T, float> || std::is_same_v<T, double>,
                "safetensors: unsupported element type");
  if constexpr (std::is_same_v<T, std::uint8_t>) return DType::U8;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::I32;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return DType::U32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, float>) return DType::F32;
  else return DType::F64;
}

inline std::string shape_string(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// One tensor of a file: offsets are relative to the data buffer.
struct TensorInfo {
  std::string name;
  DType dtype = DType::U8;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t nbytes() const noexcept { return end - begin; }
  std::uint64_t numel() const noexcept { return nbytes() / dtype_size(dtype); }
};

/// Collects named tensors (pointers, not copies) and string metadata, then writes them.
/// The pointed-to data must stay alive until write()/to_bytes().
class SafetensorsWriter {
 public:
  /// Adds a tensor of `dtype` and `shape` whose bytes start at `data`. Throws InvalidArgument
  /// for an empty, reserved ("__metadata__") or repeated name.
  void add(const std::string& name, DType dtype, std::vector<std::uint64_t> shape,
           const void* data) {
    if (name.empty() || name == "__metadata__")
      throw InvalidArgument("safetensors: invalid tensor name '" + name + "'");
    for (const auto& t : tensors_)
      if (t.info.name == name) throw InvalidArgument("safetensors: tensor '" + name + "' added twice");
    std::uint64_t n = dtype_size(dtype);
    for (auto d : shape) n *= d;
    NANONAV_ASSERT(data != nullptr || n == 0);
    Entry e;
    e.info.name = name;
    e.info.dtype = dtype;
    e.info.shape = std::move(shape);
    e.info.begin = next_offset_;
    e.info.end = next_offset_ + n;
    e.data = data;
    next_offset_ = e.info.end;
    tensors_.push_back(std::move(e));
  }

  template <class T>
  void add(const std::string& name, std::vector<std::uint64_t> shape, const T* data) {
    add(name, dtype_of<T>(), std::move(shape), static_cast<const void*>(data));
  }

  /// Sets a metadata entry (safetensors metadata values are strings).
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  /// The JSON header, padded with spaces to a multiple of 8 bytes.
  std::string header() const {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
      nlohmann::ordered_json m = nlohmann::ordered_json::object();
      for (const auto& kv : metadata_) m[kv.first] = kv.second;
      h["__metadata__"] = std::move(m);
    }
    for (const auto& t : tensors_) {
      nlohmann::ordered_json e = nlohmann::ordered_json::object();
      e["dtype"] = dtype_name(t.info.dtype);
      e["shape"] = t.info.shape;
      e["data_offsets"] = {t.info.begin, t.info.end};
      h[t.info.name] = std::move(e);
    }
    std::string s = h.dump();
    s.append((8 - s.size() % 8) % 8, ' ');
    return s;
  }

  /// Size of the whole file in bytes.
  std::uint64_t file_size() const { return 8 + header().size() + next_offset_; }

  /// Writes the file atomically (temporary file + fsync + rename). Throws IoError.
  void write(const std::string& path) const {
    const std::string h = header();
    AtomicFile f(path);
    const auto len = length_bytes(h.size());
    f.write(len.data(), len.size());
    f.write(h.data(), h.size());
    for (const auto& t : tensors_) f.write(t.data, static_cast<std::size_t>(t.info.nbytes()));
    f.commit();
  }

  /// The whole file as bytes (tests, in-memory use).
  std::vector<std::uint8_t> to_bytes() const {
    const std::string h = header();
    std::vector<std::uint8_t> out;
    out.reserve(static_cast<std::size_t>(8 + h.size() + next_offset_));
    const auto len = length_bytes(h.size());
    out.insert(out.end(), len.begin(), len.end());
    out.insert(out.end(), h.begin(), h.end());
    for (const auto& t : tensors_) {
      const auto* p = static_cast<const std::uint8_t*>(t.data);
      out.insert(out.end(), p, p + t.info.nbytes());
    }
    return out;
  }

 private:
  struct Entry {
    TensorInfo info;
    const void* data = nullptr;
  };
  static std::vector<std::uint8_t> length_bytes(std::uint64_t n) {
    std::vector<std::uint8_t> b(8);
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
    return b;
  }
  std::vector<Entry> tensors_;
  std::map<std::string, std::string> metadata_;
  std::uint64_t next_offset_ = 0;
};

/// Opens a safetensors file and validates its header; tensor data is read on request.
class SafetensorsReader {
 public:
  /// Largest header accepted: bounds the one allocation made before validation.
  static constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;

  /// Opens and validates `path`. Throws IoError if it cannot be opened, FormatError if it is
  /// not a valid safetensors file.
  explicit SafetensorsReader(const std::string& path) : path_(path) {
    in_.open(path, std::ios::binary);
    if (!in_) throw IoError(path, "cannot open for reading");
    in_.seekg(0, std::ios::end);
    const auto end = in_.tellg();
    if (end < 0) throw IoError(path, "cannot determine the file size");
    file_size_ = static_cast<std::uint64_t>(end);
    in_.seekg(0);
    if (file_size_ < 8)
      fail(0, "file is " + std::to_string(file_size_) + " bytes, shorter than the 8-byte header length",
           "truncated or not a safetensors file");
    std::uint8_t len[8];
    read_at(0, len, 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    if (n > kMaxHeaderBytes)
      fail(0, "header length " + std::to_string(n) + " exceeds the limit of " +
                  std::to_string(kMaxHeaderBytes) + " bytes",
           "not a safetensors file, or corrupt");
    if (n > file_size_ - 8)
      fail(0, "header length " + std::to_string(n) + " runs past the end of the " +
                  std::to_string(file_size_) + "-byte file",
           "the file is truncated");
    if (n < 2) fail(0, "header length " + std::to_string(n) + " is too short for a JSON object");
    header_.resize(static_cast<std::size_t>(n));
    read_at(8, &header_[0], header_.size());
    data_start_ = 8 + n;
    parse_header();
  }

  const std::string& path() const noexcept { return path_; }
  std::uint64_t file_size() const noexcept { return file_size_; }
  /// Absolute file offset of the data buffer.
  std::uint64_t data_start() const noexcept { return data_start_; }
  /// The header's JSON text (with its padding).
  const std::string& header_text() const noexcept { return header_; }
  /// All tensors, in order of their offsets.
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// The tensor called `name`, or nullptr.
  const TensorInfo* find(const std::string& name) const noexcept {
    for (const auto& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }

  /// The tensor called `name`, checked: dtype must match and each dimension of `shape` must
  /// match unless it is -1 (any). Throws FormatError otherwise.
  const TensorInfo& expect(const std::string& name, DType dtype,
                           const std::vector<std::int64_t>& shape) const {
    const TensorInfo* t = find(name);
    if (!t) fail(8, "tensor '" + name + "' is missing", "was this file written by another program?");
    const std::uint64_t at = key_offset(name);
    if (t->dtype != dtype)
      fail(at, "tensor '" + name + "' has dtype " + dtype_name(t->dtype) + ", expected " +
                   dtype_name(dtype),
           "was the file written by another program or version?");
    bool ok = t->shape.size() == shape.size();
    for (std::size_t i = 0; ok && i < shape.size(); ++i)
      ok = shape[i] < 0 || t->shape[i] == static_cast<std::uint64_t>(shape[i]);
    if (!ok) {
      std::string want = "[";
      for (std::size_t i = 0; i < shape.size(); ++i)
        want += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
      fail(at, "tensor '" + name + "' has shape " + shape_string(t->shape) + ", expected " + want + "]",
           "was the file written with other settings (grid size, model size)?");
    }
    return *t;
  }

  /// Whether the metadata holds `key`.
  bool has_meta(const std::string& key) const { return metadata_.count(key) != 0; }

  /// The metadata value for `key`. Throws FormatError if it is missing.
  const std::string& meta(const std::string& key) const {
    const auto it = metadata_.find(key);
    if (it == metadata_.end())
      fail(8, "metadata key '" + key + "' is missing", "was this file written by another program?");
    return it->second;
  }

  /// Reads the bytes of tensor `t` into dst, which holds at least t.nbytes() bytes.
  void read(const TensorInfo& t, void* dst) {
    read_at(data_start_ + t.begin, dst, static_cast<std::size_t>(t.nbytes()));
  }

  /// Reads tensor `t` into a vector of its element type (checked).
  template <class T>
  std::vector<T> read_vector(const TensorInfo& t) {
    if (t.dtype != dtype_of<T>())
      fail(key_offset(t.name), "tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) +
                                   ", expected " + dtype_name(dtype_of<T>()));
    std::vector<T> v(static_cast<std::size_t>(t.numel()));
    read(t, v.data());
    return v;
  }

  /// Throws a FormatError about this file.
  [[noreturn]] void fail(std::uint64_t offset, const std::string& what,
                         const std::string& hint = {}) const {
    throw FormatError(path_, offset, what, hint);
  }

  /// Absolute offset of the first mention of `"name"` in the header (8 if not found).
  std::uint64_t key_offset(const std::string& name) const {
    const auto p = header_.find(nlohmann::json(name).dump());
    return p == std::string::npos ? 8 : 8 + p;
  }

 private:
  void read_at(std::uint64_t offset, void* dst, std::size_t n) {
    if (n == 0) return;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!in_ || static_cast<std::size_t>(in_.gcount()) != n)
      fail(offset, "cannot read " + std::to_string(n) + " bytes", "was the file changed while reading?");
  }

  static bool as_u64(const nlohmann::json& v, std::uint64_t& out) {
    if (v.is_number_unsigned()) {
      out = v.get<std::uint64_t>();
      return true;
    }
    if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
      out = static_cast<std::uint64_t>(v.get<std::int64_t>());
      return true;
    }
    return false;
  }

  void parse_header() {
    nlohmann::json h;
    try {
      h = nlohmann::json::parse(header_);
    } catch (const nlohmann::json::parse_error& e) {
      fail(8 + (e.byte > 0 ? e.byte - 1 : 0), "the header is not valid JSON",
           "the file is corrupt");
    }
    if (!h.is_object()) fail(8, "the header is not a JSON object", "the file is corrupt");
    const std::uint64_t data_size = file_size_ - data_start_;
    for (auto it = h.begin(); it != h.end(); ++it) {
      const std::string& name = it.key();
      const std::uint64_t at = key_offset(name);
      const nlohmann::json& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) fail(at, "__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string())
            fail(at, "metadata value of '" + m.key() + "' is not a string",
                 "safetensors metadata values are strings");
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      if (!v.is_object()) fail(at, "entry '" + name + "' is not an object");
      for (auto f = v.begin(); f != v.end(); ++f)
        if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
          fail(at, "tensor '" + name + "' has an unknown field '" + f.key() + "'");
      TensorInfo t;
      t.name = name;
      const auto dt = v.find("dtype");
      if (dt == v.end() || !dt->is_string()) fail(at, "tensor '" + name + "' has no dtype string");
      if (!parse_dtype(dt->get<std::string>(), t.dtype))
        fail(at, "tensor '" + name + "' has unsupported dtype '" + dt->get<std::string>() + "'",
             "supported: U8 I32 U32 I64 F32 F64");
      const auto sh = v.find("shape");
      if (sh == v.end() || !sh->is_array()) fail(at, "tensor '" + name + "' has no shape array");
      std::uint64_t bytes = dtype_size(t.dtype);
      for (const auto& d : *sh) {
        std::uint64_t dim = 0;
        if (!as_u64(d, dim)) fail(at, "tensor '" + name + "' has a shape entry that is not a non-negative integer");
        t.shape.push_back(dim);
        if (dim != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / dim)
          fail(at, "tensor '" + name + "' has a shape " + shape_string(t.shape) + "... whose size overflows");
        bytes *= dim;
      }
      const auto off = v.find("data_offsets");
      if (off == v.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], t.begin) ||
          !as_u64((*off)[1], t.end))
        fail(at, "tensor '" + name + "' needs data_offsets [begin, end] of non-negative integers");
      if (t.begin > t.end)
        fail(at, "tensor '" + name + "' has data_offsets begin > end");
      if (t.end - t.begin != bytes)
        fail(at, "tensor '" + name + "' spans " + std::to_string(t.end - t.begin) +
                     " bytes but its dtype " + dtype_name(t.dtype) + " and shape " +
                     shape_string(t.shape) + " need " + std::to_string(bytes));
      if (t.end > data_size)
        fail(data_start_ + std::min(t.begin, data_size),
             "tensor '" + name + "' ends at buffer byte " + std::to_string(t.end) +
                 " but the buffer has only " + std::to_string(data_size) + " bytes",
             "the file is truncated");
      tensors_.push_back(std::move(t));
    }
    std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t pos = 0;
    for (const auto& t : tensors_) {
      if (t.begin < pos)
        fail(data_start_ + t.begin, "tensor '" + t.name + "' overlaps the tensor before it");
      if (t.begin > pos)
        fail(data_start_ + pos, "gap of " + std::to_string(t.begin - pos) +
                                    " bytes before tensor '" + t.name + "'");
      pos = t.end;
    }
    if (pos != data_size)
      fail(data_start_ + pos, "the tensors cover " + std::to_string(pos) + " bytes but the buffer has " +
                                  std::to_string(data_size),
           pos < data_size ? "trailing bytes after the last tensor" : "the file is truncated");
  }

  std::string path_;
  std::ifstream in_;
  std::uint64_t file_size_ = 0;
  std::uint64_t data_start_ = 0;
  std::string header_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace detail
}  // namespace nanonav
