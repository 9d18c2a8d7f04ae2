#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nanonav/detail/atomic_file.hpp>
#include <nanonav/detail/safetensors.hpp>

using namespace nanonav;
using namespace nanonav::detail;

namespace {
std::string tmp_path(const std::string& name) { return std::string(NANONAV_TEST_TMPDIR) + "/" + name; }

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A file made of a header string (padded here) and a data buffer.
std::vector<std::uint8_t> make_file(std::string header, const std::vector<std::uint8_t>& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<std::uint8_t> b;
  b.reserve(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(header.size() >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// Opens path and reads every tensor: the whole pipeline a loader runs.
void open_and_read_all(const std::string& path) {
  SafetensorsReader r(path);
  for (const auto& t : r.tensors()) {
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(t.nbytes()));
    r.read(t, buf.data());
  }
}

// True if opening/reading throws FormatError; fails the test on any other exception.
bool rejects(const std::string& path) {
  try {
    open_and_read_all(path);
  } catch (const FormatError&) {
    return true;
  }
  return false;
}

struct Sample {
  std::vector<std::uint8_t> u8{1, 2, 3, 4, 5, 6};
  std::vector<float> f32{1.5f, -2.25f, 3e-8f};
  std::vector<double> f64{3.141592653589793, -1e300};
  std::vector<std::int64_t> i64{-5, 1ll << 40};
  std::vector<std::int32_t> i32{-7};
  std::vector<std::uint32_t> u32{};
  std::int64_t step = 123456789012345;

  SafetensorsWriter writer() const {
    SafetensorsWriter w;
    w.add("bytes", {2, 3}, u8.data());
    w.add("floats", {3}, f32.data());
    w.add("doubles", {1, 2}, f64.data());
    w.add("longs", {2}, i64.data());
    w.add("int", {1, 1, 1}, i32.data());
    w.add("empty", {0, 4}, u32.data());
    w.add("step", {}, &step);  // a scalar: shape [], one element
    w.set_metadata("format", "test");
    w.set_metadata("answer", "42");
    return w;
  }
};
}  // namespace

TEST_CASE("safetensors round trip keeps tensors, shapes, dtypes and metadata", "[safetensors]") {
  const Sample s;
  const SafetensorsWriter w = s.writer();
  const std::string path = tmp_path("st_roundtrip.safetensors");
  w.write(path);
  const auto bytes = read_bytes(path);
  CHECK(bytes == w.to_bytes());
  CHECK(bytes.size() == w.file_size());
  CHECK(w.header().size() % 8 == 0);

  SafetensorsReader r(path);
  CHECK(r.data_start() % 8 == 0);
  CHECK(r.tensors().size() == 7);
  CHECK(r.metadata().size() == 2);
  CHECK(r.meta("answer") == "42");
  CHECK_THROWS_AS(r.meta("nope"), FormatError);
  CHECK(r.read_vector<std::uint8_t>(r.expect("bytes", DType::U8, {2, 3})) == s.u8);
  CHECK(r.read_vector<float>(r.expect("floats", DType::F32, {3})) == s.f32);
  CHECK(r.read_vector<double>(r.expect("doubles", DType::F64, {-1, 2})) == s.f64);
  CHECK(r.read_vector<std::int64_t>(r.expect("longs", DType::I64, {2})) == s.i64);
  CHECK(r.read_vector<std::int32_t>(r.expect("int", DType::I32, {1, 1, 1})) == s.i32);
  CHECK(r.read_vector<std::uint32_t>(r.expect("empty", DType::U32, {0, 4})).empty());
  CHECK(r.read_vector<std::int64_t>(r.expect("step", DType::I64, {})) ==
        std::vector<std::int64_t>{s.step});
}

TEST_CASE("safetensors expect() rejects wrong names, dtypes and shapes", "[safetensors]") {
  const std::string path = tmp_path("st_expect.safetensors");
  Sample().writer().write(path);
  SafetensorsReader r(path);
  CHECK_THROWS_AS(r.expect("missing", DType::U8, {2, 3}), FormatError);
  CHECK_THROWS_AS(r.expect("bytes", DType::F32, {2, 3}), FormatError);
  CHECK_THROWS_AS(r.expect("bytes", DType::U8, {3, 2}), FormatError);
  CHECK_THROWS_AS(r.expect("bytes", DType::U8, {6}), FormatError);
  CHECK_THROWS_AS(r.expect("bytes", DType::U8, {2, 3, 1}), FormatError);
  CHECK_THROWS_AS(r.read_vector<float>(*r.find("bytes")), FormatError);
  try {
    r.expect("bytes", DType::U8, {3, 2});
  } catch (const FormatError& e) {
    CHECK(e.path() == path);
    CHECK(e.offset() > 8);  // points at the tensor's entry in the header
    CHECK(std::string(e.what()).find("[2, 3]") != std::string::npos);
  }
}

TEST_CASE("safetensors: truncation at every offset is a FormatError", "[safetensors]") {
  const auto bytes = Sample().writer().to_bytes();
  const std::string path = tmp_path("st_trunc.safetensors");
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    write_bytes(path, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)));
    INFO("truncated to " << len << " of " << bytes.size() << " bytes");
    CHECK(rejects(path));
  }
  // One extra byte at the end is rejected too (tensors must cover the buffer).
  auto longer = bytes;
  longer.push_back(0);
  write_bytes(path, longer);
  CHECK(rejects(path));
}

TEST_CASE("safetensors: flipped header bytes are rejected or harmless, never a crash",
          "[safetensors]") {
  const auto bytes = Sample().writer().to_bytes();
  const std::string path = tmp_path("st_flip.safetensors");
  std::size_t header_end = 8;
  for (int i = 0; i < 8; ++i) header_end += static_cast<std::size_t>(bytes[static_cast<std::size_t>(i)]) << (8 * i);
  int rejected = 0, accepted = 0;
  for (std::size_t at = 0; at < header_end; ++at)
    for (std::uint8_t bit : {0x01, 0x20, 0x80}) {
      auto b = bytes;
      b[at] = static_cast<std::uint8_t>(b[at] ^ bit);
      write_bytes(path, b);
      INFO("byte " << at << " xor " << int(bit));
      if (rejects(path)) ++rejected;
      else ++accepted;
    }
  // Every flip in the length prefix and almost every flip in the JSON is detected; the few
  // accepted ones change a metadata value's letters or the padding is not touched at all.
  CHECK(rejected > 3 * static_cast<int>(header_end) * 8 / 10);
  CHECK(accepted + rejected == 3 * static_cast<int>(header_end));
}

TEST_CASE("safetensors: wrong header lengths are FormatErrors", "[safetensors]") {
  const auto bytes = Sample().writer().to_bytes();
  const std::string path = tmp_path("st_len.safetensors");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
  for (std::uint64_t bad : {std::uint64_t{0}, std::uint64_t{1}, n - 8, n - 1, n + 1, n + 8,
                            std::uint64_t{bytes.size()}, std::uint64_t{1} << 40,
                            ~std::uint64_t{0}}) {
    auto b = bytes;
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bad >> (8 * i));
    write_bytes(path, b);
    INFO("header length " << bad);
    CHECK(rejects(path));
  }
}

TEST_CASE("safetensors: bad tensor entries are FormatErrors", "[safetensors]") {
  const std::string path = tmp_path("st_bad.safetensors");
  const std::vector<std::uint8_t> data(16, 7);
  const auto check_rejected = [&](const std::string& header, std::size_t data_bytes = 16) {
    write_bytes(path, make_file(header, std::vector<std::uint8_t>(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(data_bytes))));
    INFO(header);
    CHECK(rejects(path));
  };
  // A valid reference first.
  write_bytes(path, make_file(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data));
  CHECK_FALSE(rejects(path));

  check_rejected(R"([1, 2])");
  check_rejected(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]})");  // unclosed
  check_rejected(R"({"a":{"dtype":"X9","shape":[16],"data_offsets":[0,16]}})");  // dtype
  check_rejected(R"({"a":{"dtype":"BF16","shape":[8],"data_offsets":[0,16]}})");  // unsupported
  check_rejected(R"({"a":{"dtype":"U8","shape":[-16],"data_offsets":[0,16]}})");  // negative
  check_rejected(R"({"a":{"dtype":"U8","shape":[16.0],"data_offsets":[0,16]}})");  // not integer
  check_rejected(R"({"a":{"dtype":"U8","shape":[4,5],"data_offsets":[0,16]}})");  // size
  check_rejected(R"({"a":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}})");  // size
  check_rejected(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[16,0]}})");  // reversed
  check_rejected(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[8,24]}})");  // out of range
  check_rejected(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0]}})");
  check_rejected(R"({"a":{"dtype":"U8","shape":[16]}})");
  check_rejected(R"({"a":{"shape":[16],"data_offsets":[0,16]}})");
  check_rejected(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16],"extra":1}})");
  check_rejected(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})");
  check_rejected(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"  // overlap
                 R"("b":{"dtype":"U8","shape":[12],"data_offsets":[4,16]}})");
  check_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"  // gap
                 R"("b":{"dtype":"U8","shape":[8],"data_offsets":[8,16]}})");
  check_rejected(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})");  // trailing bytes
  check_rejected(R"({"__metadata__":{"k":1},"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})");
  check_rejected(R"({"__metadata__":[],"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})");
  check_rejected(R"({"a":5})");
}

TEST_CASE("safetensors: a file laid out byte by byte as Python's safetensors writes it loads",
          "[safetensors]") {
  // safetensors.torch.save_file({"weight": torch.tensor([[1., 2.], [3., 4.]]),
  //                              "ids": torch.tensor([7, 8], dtype=torch.uint8)},
  //                             metadata={"format": "pt"})
  // Header: 149 bytes of JSON + 3 spaces of padding = 152 = 0x98; data from byte 160.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("ids":{"dtype":"U8","shape":[2],"data_offsets":[16,18]}})";
  REQUIRE(json.size() == 149);
  std::vector<std::uint8_t> b = {0x98, 0, 0, 0, 0, 0, 0, 0};
  b.insert(b.end(), json.begin(), json.end());
  b.insert(b.end(), 3, ' ');
  const std::uint8_t floats[] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,   // 1, 2
                                 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40};  // 3, 4
  b.insert(b.end(), std::begin(floats), std::end(floats));
  b.push_back(7);
  b.push_back(8);
  const std::string path = tmp_path("st_python.safetensors");
  write_bytes(path, b);
  SafetensorsReader r(path);
  CHECK(r.meta("format") == "pt");
  CHECK(r.data_start() == 160);
  CHECK(r.read_vector<float>(r.expect("weight", DType::F32, {2, 2})) == std::vector<float>{1, 2, 3, 4});
  CHECK(r.read_vector<std::uint8_t>(r.expect("ids", DType::U8, {2})) == std::vector<std::uint8_t>{7, 8});
}

TEST_CASE("atomic writes replace the file whole and leave no temporary behind", "[safetensors]") {
  const std::string path = tmp_path("st_atomic.bin");
  const std::string a = "first version", b = "second";
  write_file_atomically(path, a.data(), a.size());
  write_file_atomically(path, b.data(), b.size());
  const auto got = read_bytes(path);
  CHECK(std::string(got.begin(), got.end()) == b);
  {
    AtomicFile f(path);
    f.write("junk", 4);
    // destroyed without commit: the old file stays
  }
  const auto still = read_bytes(path);
  CHECK(std::string(still.begin(), still.end()) == b);
  CHECK_THROWS_AS(AtomicFile(tmp_path("no/such/dir/file.bin")), IoError);
  CHECK_THROWS_AS(SafetensorsReader(tmp_path("does_not_exist.safetensors")), IoError);
}
