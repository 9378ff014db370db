// parse_safetensors on hand-built images: every malformation is Error(kFormat) naming the source and,
// where one is at fault, the tensor; well-formed edge cases (empty header, zero-size tensors, padding,
// metadata) parse.
#include <gtest/gtest.h>

#include "st_image.h"
#include "util/error.h"
#include "weights/safetensors.h"

namespace {

using namespace moert_test;

std::map<std::string, moert::TensorInfo> parse(const std::string& img) {
  return moert::parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(),
                                  "test.safetensors");
}

// Expects Error(kFormat) whose message contains every one of `want`.
void expect_format_error(const std::string& img, std::initializer_list<std::string> want) {
  try {
    parse(img);
    ADD_FAILURE() << "parsed a malformed image";
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kFormat) << e.what();
    const std::string msg = e.what();
    EXPECT_NE(msg.find("test.safetensors"), std::string::npos) << msg;
    for (const auto& w : want) EXPECT_NE(msg.find(w), std::string::npos) << "lacks '" << w << "': " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a moert::Error: " << e.what();
  }
}

std::string one(const std::string& entry, const std::string& data = std::string(8, 'x')) {
  return st_image("{\"t\": " + entry + "}", data);
}

TEST(SafetensorsFault, Valid) {
  StTensors ts = {st_tensor("a", "F32", {2, 3}),     st_tensor("b", "BF16", {5}),
                  st_tensor("c", "F8_E4M3", {4, 4}), st_tensor("d", "I64", {1}),
                  st_tensor("e", "U8", {3}),         st_tensor("f", "F16", {2}),
                  st_tensor("g", "I32", {1})};
  std::string img = st_build(ts);
  auto m = parse(img);
  ASSERT_EQ(m.size(), ts.size());
  EXPECT_EQ(m.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m.at("a").nbytes, 24u);
  EXPECT_EQ(m.at("c").dtype, moert::DType::kF8E4M3);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.at("b").data), m.at("b").nbytes), ts[1].data);
}

TEST(SafetensorsFault, ValidEdgeCases) {
  EXPECT_TRUE(parse(st_image("{}", "")).empty());
  EXPECT_TRUE(parse(st_image("{\"__metadata__\": {\"format\": \"pt\"}}", "")).empty());
  // Header padded with spaces (as the reference writer aligns the data section).
  auto m =
      parse(st_image("{\"t\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}}        ", "ab"));
  EXPECT_EQ(m.at("t").nbytes, 2u);
  // Scalars and zero-size tensors.
  m =
      parse(st_image("{\"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]},"
                     " \"z\": {\"dtype\": \"F32\", \"shape\": [0, 7], \"data_offsets\": [4, 4]}}",
                     "abcd"));
  EXPECT_EQ(m.at("s").numel(), 1);
  EXPECT_EQ(m.at("z").nbytes, 0u);
  // Trailing bytes after the last tensor are tolerated.
  m = parse(st_image("{\"t\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}}", "abcdef"));
  EXPECT_EQ(m.size(), 1u);
}

TEST(SafetensorsFault, TooShort) {
  expect_format_error("", {"too short"});
  expect_format_error("1234567", {"too short"});
}

TEST(SafetensorsFault, HeaderLengthBeyondFile) {
  expect_format_error(st_raw(1000, "{}", ""), {"header length 1000", "runs past the end"});
  expect_format_error(st_raw(~0ull, "{}", ""), {"header length"});
  expect_format_error(st_raw(3, "{}", ""), {"header length 3"});
}

TEST(SafetensorsFault, HeaderNotJson) {
  expect_format_error(st_image("", ""), {"not valid JSON"});
  expect_format_error(st_image("{\"t\": ", ""), {"not valid JSON"});
  expect_format_error(st_image("{} trailing", ""), {"not valid JSON"});
  expect_format_error(st_image(std::string("{\"\xff\xfe\": 1}"), ""), {"not valid JSON"});
  expect_format_error(
      st_image("{\"t\": {\"dtype\": \"F32\", \"shape\": [1e400], \"data_offsets\": [0, 0]}}", ""),
      {"not valid JSON"});
  expect_format_error(st_image("[]", ""), {"JSON object"});
  expect_format_error(st_image("12", ""), {"JSON object"});
}

TEST(SafetensorsFault, BadEntries) {
  expect_format_error(one("[1, 2]"), {"'t'", "must be an object"});
  expect_format_error(one("{\"shape\": [2], \"data_offsets\": [0, 8]}"), {"'t'", "dtype"});
  expect_format_error(one("{\"dtype\": 5, \"shape\": [2], \"data_offsets\": [0, 8]}"), {"'t'", "dtype"});
  expect_format_error(one("{\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}"), {"'t'", "Q4"});
  expect_format_error(one("{\"dtype\": \"F32\", \"data_offsets\": [0, 8]}"), {"'t'", "shape"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}"), {"'t'", "shape"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}"),
                      {"'t'", "negative"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}"),
                      {"'t'", "non-integer"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}"), {"'t'"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2]}"), {"'t'", "data_offsets"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}"),
                      {"'t'", "data_offsets"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 9]}"),
                      {"'t'", "data_offsets"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}"),
                      {"'t'", "data_offsets"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0.0, 8.0]}"),
                      {"'t'", "data_offsets"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": \"0-8\"}"),
                      {"'t'", "data_offsets"});
}

TEST(SafetensorsFault, OffsetsOutOfRange) {
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 9]}"),
                      {"'t'", "[0, 9]", "run past the end", "8 bytes"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [18446744073709551608, "
                          "18446744073709551615]}"),
                      {"'t'"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}"),
                      {"'t'", "reversed"});
}

TEST(SafetensorsFault, SizeNotMatchingShapeTimesDtype) {
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}"),
                      {"'t'", "holds 8 bytes", "needs 12"});
  expect_format_error(one("{\"dtype\": \"BF16\", \"shape\": [2, 3], \"data_offsets\": [0, 8]}"),
                      {"'t'", "BF16", "[2, 3]", "needs 12"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 8]}"),
                      {"'t'", "needs 0"});
}

TEST(SafetensorsFault, ShapeOverflow) {
  // numel * dtype size would wrap 64 bits: must be rejected, not wrapped into a small matching size.
  expect_format_error(
      one("{\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 0]}"), {"'t'"});
  expect_format_error(one("{\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776, 1099511627776], "
                          "\"data_offsets\": [0, 0]}"),
                      {"'t'"});
  expect_format_error(one("{\"dtype\": \"U8\", \"shape\": [18446744073709551615], \"data_offsets\": [0, 8]}"),
                      {"'t'"});
  // A zero dimension after a huge product stays zero-size and is fine if the offsets agree.
  auto m = parse(one("{\"dtype\": \"U8\", \"shape\": [1099511627776, 0], \"data_offsets\": [0, 0]}"));
  EXPECT_EQ(m.at("t").nbytes, 0u);
}

TEST(SafetensorsFault, OverlappingTensors) {
  const std::string data(16, 'x');
  expect_format_error(st_image("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                               " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                               data),
                      {"'a'", "'b'", "overlap"});
  expect_format_error(st_image("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                               " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                               data),
                      {"overlap"});
  // Contained in a larger tensor.
  expect_format_error(st_image("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                               " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8]}}",
                               data),
                      {"overlap"});
  // A zero-size tensor sorted between two overlapping ones must not hide the overlap.
  expect_format_error(st_image("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                               " \"z\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [2, 2]},"
                               " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8]}}",
                               data),
                      {"'a'", "'b'", "overlap"});
  // Adjacent tensors and zero-size tensors at a shared boundary are fine.
  auto m =
      parse(st_image("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                     " \"z\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]},"
                     " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
                     data));
  EXPECT_EQ(m.size(), 3u);
}

TEST(SafetensorsFault, EmptyAndMissingFiles) {
  TempDir tmp;
  write_bytes(tmp.path() / "empty.safetensors", "");
  try {
    moert::SafetensorsFile f((tmp.path() / "empty.safetensors").string());
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kFormat);
    EXPECT_NE(std::string(e.what()).find("empty.safetensors"), std::string::npos) << e.what();
  }
  try {
    moert::SafetensorsFile f((tmp.path() / "absent.safetensors").string());
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("absent.safetensors"), std::string::npos) << e.what();
  }
  try {
    moert::SafetensorsFile f(tmp.str());
    FAIL();
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), moert::ErrorCode::kIo);
  }
}

// Every prefix of a valid image is rejected cleanly (a truncated download at any byte).
TEST(SafetensorsFault, EveryTruncation) {
  std::string img =
      st_build({st_tensor("a", "F32", {3}), st_tensor("b", "BF16", {2, 2}), st_tensor("c", "U8", {5})});
  ASSERT_EQ(parse(img).size(), 3u);
  const size_t data_start = img.size() - (12 + 8 + 5);
  for (size_t n = 0; n < img.size(); ++n) {
    std::string cut = img.substr(0, n);
    try {
      parse(cut);
      ADD_FAILURE() << "prefix of " << n << " bytes parsed";
    } catch (const moert::Error& e) {
      EXPECT_EQ(e.code(), moert::ErrorCode::kFormat);
      if (n > data_start) {
        EXPECT_NE(std::string(e.what()).find("tensor '"), std::string::npos) << e.what();
      }
    }
  }
}

}  // namespace
