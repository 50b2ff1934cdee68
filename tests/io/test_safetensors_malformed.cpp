// What SafetensorsFile::open rejects, and with which message: every file is
// built byte by byte here. Then a fuzz test: thousands of deterministic
// mutations of a valid file must each load cleanly or throw flint::Error.
#include <gtest/gtest.h>

#include <cctype>
#include <random>

#include "io/safetensors.h"
#include "io_test_util.h"
#include "support/test_support.h"

namespace flint {
namespace {

using testing::error_of;
using testing::le64;
using testing::raw_safetensors;
using testing::TempDir;
using testing::write_bytes;

std::string entry(std::string_view dtype, std::string_view shape, std::string_view offsets) {
  return fmt::format(R"({{"dtype":"{}","shape":{},"data_offsets":{}}})", dtype, shape, offsets);
}

struct MalformedCase {
  const char* name;
  std::string bytes;
  std::string expected;  // substring of the error message
};

std::vector<MalformedCase> malformed_cases() {
  const std::string f32x4 = entry("F32", "[2,2]", "[0,16]");
  const std::string data16(16, '\x01');
  auto one = [&](std::string_view e, std::string_view data = std::string(16, '\x01')) {
    return raw_safetensors(fmt::format(R"({{"t":{}}})", e), data);
  };
  std::string deep(20000, '[');
  deep += std::string(20000, ']');
  return {
      {"empty file", "", "0 bytes is too short"},
      {"7 bytes", std::string(7, '\0'), "7 bytes is too short"},
      {"header length past the end", le64(100) + "{}", "header length 100 runs past the end of the file (10 bytes)"},
      {"header length 2^64-1", le64(~uint64_t{0}) + "{}", "header length 18446744073709551615 is over the"},
      {"header length 2^63", le64(uint64_t{1} << 63) + "{}", "is over the 100000000-byte limit"},
      {"header length 0", le64(0) + "{}", "must be a JSON object"},
      {"header length cuts the JSON", le64(1) + "{}", "must be a JSON object"},
      {"truncated JSON", raw_safetensors(R"({"t":{"dtype":"F32")", ""), "must be a JSON object"},
      {"invalid JSON in braces", raw_safetensors(R"({"t":{"dtype":"F32"})", ""), "not valid JSON"},
      {"JSON array", raw_safetensors("[1,2]", ""), "must be a JSON object"},
      {"JSON string", raw_safetensors(R"("{}")", ""), "must be a JSON object"},
      {"leading whitespace", raw_safetensors(" {}", ""), "must be a JSON object"},
      {"NUL padding", raw_safetensors(std::string("{}\0\0\0\0\0\0", 8), ""), "padded only with spaces"},
      {"newline padding", raw_safetensors("{}\n     ", ""), "padded only with spaces"},
      {"two objects", raw_safetensors("{} {}", ""), "not valid JSON"},
      {"entry not an object", one("[1]"),
       "tensor 't': expected an object with dtype, shape and data_offsets, got an array"},
      {"missing dtype", one(R"({"shape":[2,2],"data_offsets":[0,16]})"), "tensor 't': field 'dtype': missing"},
      {"missing shape", one(R"({"dtype":"F32","data_offsets":[0,16]})"), "field 'shape': missing"},
      {"missing data_offsets", one(R"({"dtype":"F32","shape":[2,2]})"), "field 'data_offsets': missing"},
      {"unknown key", one(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,16],"offsets":[0,16]})"),
       "field 'offsets': unknown key"},
      {"dtype not a string", one(R"({"dtype":4,"shape":[2,2],"data_offsets":[0,16]})"),
       "field 'dtype': expected a string, got a number"},
      {"unknown dtype", one(entry("F17", "[2,2]", "[0,16]")), "unknown dtype 'F17'"},
      {"lower-case dtype", one(entry("f32", "[2,2]", "[0,16]")), "unknown dtype 'f32'"},
      {"F64", one(entry("F64", "[2]", "[0,16]")), "unsupported dtype F64"},
      {"BOOL", one(entry("BOOL", "[16]", "[0,16]")), "unsupported dtype BOOL"},
      {"U16", one(entry("U16", "[8]", "[0,16]")), "unsupported dtype U16"},
      {"shape not an array", one(entry("F32", "4", "[0,16]")), "field 'shape': expected an array of dimensions"},
      {"negative dimension", one(entry("F32", "[-2,-2]", "[0,16]")), "dimension 0 is -2 (a negative integer)"},
      {"fractional dimension", one(entry("F32", "[2,2.0]", "[0,16]")), "dimension 1 is 2.0 (a floating-point number)"},
      {"string dimension", one(entry("F32", R"([2,"2"])", "[0,16]")), "dimension 1 is \"2\" (a string)"},
      {"null dimension", one(entry("F32", "[null]", "[0,16]")), "dimension 0 is null"},
      {"dimension 2^63", one(entry("U8", "[9223372036854775808]", "[0,16]")), "integers in [0, 2^63)"},
      {"dimension 2^64", one(entry("U8", "[18446744073709551616]", "[0,16]")), "floating-point number"},
      {"offsets not an array", one(entry("F32", "[2,2]", "16")), "expected [begin, end], got 16"},
      {"one offset", one(entry("F32", "[2,2]", "[16]")), "expected [begin, end], got [16]"},
      {"three offsets", one(entry("F32", "[2,2]", "[0,16,16]")), "expected [begin, end]"},
      {"negative offset", one(entry("F32", "[2,2]", "[-1,15]")), "offset -1 is a negative integer"},
      {"fractional offset", one(entry("F32", "[2,2]", "[0,16.0]")), "offset 16.0 is a floating-point number"},
      {"begin after end", one(entry("F32", "[0]", "[16,0]")), "begin 16 is after end 0"},
      {"byte count mismatch", one(entry("F32", "[2,3]", "[0,16]")),
       "shape [2, 3] of f32 takes 24 bytes but data_offsets [0, 16] hold 16"},
      {"byte count of a scalar", one(entry("BF16", "[]", "[0,16]")), "takes 2 bytes"},
      // 2^62 f32 elements are exactly 2^64 bytes: a wrapping product would say 0.
      {"byte count wraps to zero", one(entry("F32", "[4611686018427387904]", "[0,0]"), ""), "more than 2^64 bytes"},
      {"element count overflows", one(entry("U8", "[4294967296,4294967296]", "[0,0]"), ""), "more than 2^64 bytes"},
      {"range past the end", one(f32x4, std::string(8, '\0')),
       "[0, 16] runs past the end of the data section (8 bytes)"},
      {"range far past the end", one(entry("U8", "[16]", "[18446744073709551600,18446744073709551616]")),
       "floating-point number"},
      {"range at 2^64-16", one(entry("U8", "[15]", "[18446744073709551600,18446744073709551615]")),
       "runs past the end of the data section"},
      {"overlapping ranges",
       raw_safetensors(fmt::format(R"({{"a":{},"b":{}}})", entry("U8", "[8]", "[0,8]"), entry("U8", "[8]", "[4,12]")),
                       std::string(12, 'x')),
       "tensor 'b': field 'data_offsets': [4, 12] overlaps tensor 'a' at [0, 8]"},
      {"the same range twice",
       raw_safetensors(fmt::format(R"({{"a":{},"b":{}}})", entry("U8", "[8]", "[0,8]"), entry("U8", "[8]", "[0,8]")),
                       std::string(8, 'x')),
       "overlaps tensor 'a'"},
      {"gap between tensors",
       raw_safetensors(fmt::format(R"({{"a":{},"b":{}}})", entry("U8", "[4]", "[0,4]"), entry("U8", "[4]", "[8,12]")),
                       std::string(12, 'x')),
       "tensor 'b': field 'data_offsets': [8, 12] leaves bytes [4, 8) of the data section unused"},
      {"first tensor not at 0", one(entry("U8", "[8]", "[8,16]")), "leaves bytes [0, 8)"},
      {"bytes after the last tensor", one(f32x4, std::string(20, 'x')), "4 bytes after the last tensor"},
      {"data but no tensors", raw_safetensors("{}", "abc"), "the tensors cover 0 bytes but the data section has 3"},
      {"metadata not an object", raw_safetensors(R"({"__metadata__":["a"]})", ""),
       "field '__metadata__': expected an object of strings, got an array"},
      {"metadata value a number", raw_safetensors(R"({"__metadata__":{"format":"pt","n":3}})", ""),
       "value of 'n' is a number, expected a string"},
      {"metadata value an object", raw_safetensors(R"({"__metadata__":{"x":{}}})", ""), "value of 'x' is an object"},
      {"deeply nested metadata", raw_safetensors(R"({"__metadata__":)" + deep + "}", ""), "got an array"},
      {"duplicate tensor name",
       raw_safetensors(fmt::format(R"({{"t":{},"t":{}}})", entry("U8", "[8]", "[0,8]"), entry("U8", "[8]", "[8,16]")),
                       data16),
       "key 't' appears more than once"},
      {"duplicate key in an entry", one(R"({"dtype":"F32","dtype":"U8","shape":[16],"data_offsets":[0,16]})"),
       "key 'dtype' appears more than once"},
      {"duplicate metadata", raw_safetensors(R"({"__metadata__":{},"__metadata__":{}})", ""),
       "key '__metadata__' appears more than once"},
      {"name not UTF-8", raw_safetensors("{\"\xff\":" + f32x4 + "}", data16), "not valid JSON"},
      {"truncated UTF-8 in a name", raw_safetensors("{\"\xc3\":" + f32x4 + "}", data16), "not valid JSON"},
      {"raw control character", raw_safetensors("{\"a\nb\":" + f32x4 + "}", data16), "not valid JSON"},
      {"comment", raw_safetensors("{/* x */}", ""), "not valid JSON"},
      {"trailing comma", raw_safetensors(R"({"t":)" + f32x4 + ",}", data16), "not valid JSON"},
      {"escaped name in the message", raw_safetensors(R"({"\n":)" + entry("F17", "[4]", "[0,16]") + "}", data16),
       "tensor '\\x0a'"},
  };
}

TEST(SafetensorsMalformed, RejectsEachWithAMessageNamingTheFile) {
  TempDir dir;
  for (const MalformedCase& c : malformed_cases()) {
    const std::string path = (dir / "case.safetensors").string();
    std::filesystem::remove(path);
    write_bytes(path, c.bytes);
    const std::string error = error_of([&] { (void)SafetensorsFile::open(path); });
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << "\n  got: " << error;
    EXPECT_EQ(error.rfind(path + ": ", 0), 0u) << c.name << "\n  got: " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << c.name << ": one line\n  got: " << error;
  }
}

// Edge cases the format allows; the reference reader accepts each of them.
TEST(SafetensorsMalformed, AcceptsTheEdgesOfTheFormat) {
  TempDir dir;
  const struct {
    const char* name;
    std::string bytes;
    size_t tensors;
  } cases[] = {
      {"no tensors", raw_safetensors("{}", ""), 0},
      {"null metadata", raw_safetensors(R"({"__metadata__":null})", ""), 0},
      {"space padding", raw_safetensors("{}      ", ""), 0},
      {"whitespace inside the JSON", raw_safetensors("{ \"t\" :\n" + entry("U8", "[ 2 ]", "[ 0 , 2 ]") + "\t}", "ab"),
       1},
      {"header order differs from data order",
       raw_safetensors(fmt::format(R"({{"b":{},"a":{}}})", entry("U8", "[2]", "[2,4]"), entry("U8", "[2]", "[0,2]")),
                       "abcd"),
       2},
      {"empty tensors share an offset",
       raw_safetensors(fmt::format(R"({{"x":{},"y":{},"z":{}}})", entry("F32", "[0]", "[0,0]"),
                                   entry("I64", "[3,0]", "[0,0]"), entry("U8", "[1]", "[0,1]")),
                       "q"),
       3},
      {"empty name", raw_safetensors(R"({"":)" + entry("I8", "[]", "[0,1]") + "}", "z"), 1},
      {"escaped name", raw_safetensors(R"({"a\u00e9\"":)" + entry("I8", "[1]", "[0,1]") + "}", "z"), 1},
      {"metadata with many keys", raw_safetensors(R"({"__metadata__":{"a":"1","b":""}})", ""), 0},
  };
  for (const auto& c : cases) {
    const std::string path = (dir / "ok.safetensors").string();
    std::filesystem::remove(path);
    write_bytes(path, c.bytes);
    std::shared_ptr<const SafetensorsFile> f;
    ASSERT_NO_THROW(f = SafetensorsFile::open(path))
        << c.name << ": " << error_of([&] { SafetensorsFile::open(path); });
    EXPECT_EQ(f->entries().size(), c.tensors) << c.name;
    for (const auto& e : f->entries()) EXPECT_EQ(f->view(e).nbytes(), e.end - e.begin) << c.name;
  }
}

TEST(SafetensorsMalformed, KeepsHeaderOrderAndDecodesEscapedNames) {
  TempDir dir;
  const std::string path = (dir / "ok.safetensors").string();
  write_bytes(path, raw_safetensors(fmt::format(R"({{"b":{},"a\u00e9":{}}})", entry("U8", "[2]", "[2,4]"),
                                                entry("U8", "[2]", "[0,2]")),
                                    "abcd"));
  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f->entries().size(), 2u);
  EXPECT_EQ(f->entries()[0].name, "b");
  EXPECT_EQ(f->entries()[1].name, "a\xc3\xa9");
  const Tensor b = f->view("b");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.raw()), 2), "cd");
}

// ---- Fuzz: a valid file, mutated; open() must succeed or throw flint::Error.

std::string valid_fuzz_seed_file(const TempDir& dir) {
  const std::string path = (dir / "seed.safetensors").string();
  std::vector<std::pair<std::string, Tensor>> tensors;
  Tensor a = Tensor::empty(DType::f32, {3, 4});
  Tensor b = Tensor::empty(DType::bf16, {5});
  Tensor c = Tensor::empty(DType::u8, {3});
  Tensor d = Tensor::empty(DType::i64, {});
  Tensor e = Tensor::empty(DType::f16, {0, 2});
  for (const Tensor* t : {&a, &b, &c, &d})
    for (uint64_t i = 0; i < t->nbytes(); ++i) t->raw()[i] = static_cast<std::byte>(i * 37 + 11);
  write_safetensors(path, {{"a", a}, {"b", b}, {"c", c}, {"d", d}, {"e", e}}, {{"format", "pt"}});
  return read_file(path);
}

// One to three deterministic mutations of a file. Most edit the header text and
// then (usually) fix the length field, so that the edits reach the checks on
// entries and offsets instead of all stopping at the length check.
std::string mutate(const std::string& file, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  // The seed's header is under 64 KiB, so its length is in the first two bytes.
  const size_t header_bytes = static_cast<size_t>(file[0] & 0xFF) + (static_cast<size_t>(file[1] & 0xFF) << 8);
  std::string header = file.substr(8, header_bytes);
  std::string data = file.substr(8 + header_bytes);
  static const std::string tokens[] = {"0",
                                       "9",
                                       "-",
                                       ".",
                                       "e",
                                       "[",
                                       "]",
                                       "{",
                                       "}",
                                       ",",
                                       ":",
                                       "\"",
                                       " ",
                                       "\\",
                                       "18446744073709551615",
                                       "9223372036854775807",
                                       "-1",
                                       "null",
                                       "true",
                                       "\"F64\"",
                                       "\"BF16\"",
                                       "\"I64\"",
                                       "[]",
                                       "{}",
                                       "\"__metadata__\"",
                                       "\xff"};
  static const std::string numbers[] = {"0",
                                        "1",
                                        "2",
                                        "3",
                                        "4",
                                        "8",
                                        "12",
                                        "16",
                                        "24",
                                        "48",
                                        "56",
                                        "60",
                                        "-1",
                                        "1.5",
                                        "1e3",
                                        "4611686018427387904",
                                        "18446744073709551615"};
  const int mutations = 1 + static_cast<int>(rng() % 3);
  for (int m = 0; m < mutations; ++m) {
    switch (rng() % 8) {
      case 0:  // a header byte
        if (!header.empty()) header[pick(header.size())] = static_cast<char>(rng());
        break;
      case 1:  // a data bit
        if (!data.empty()) data[pick(data.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 2:  // a data size change
        data.resize(rng() % 2 ? pick(data.size() + 1) : data.size() + pick(9));
        break;
      case 3: header.insert(pick(header.size() + 1), tokens[rng() % std::size(tokens)]); break;
      case 4: {  // a token replaces a few bytes
        const size_t at = pick(header.size() + 1);
        header.replace(at, std::min(header.size() - at, pick(6)), tokens[rng() % std::size(tokens)]);
        break;
      }
      case 5:
      case 6: {  // a number replaces a number: the JSON stays valid, the values change
        std::vector<size_t> starts;
        for (size_t i = 0; i < header.size(); ++i)
          if (std::isdigit(static_cast<unsigned char>(header[i])) &&
              (i == 0 || !std::isalnum(static_cast<unsigned char>(header[i - 1]))))
            starts.push_back(i);
        if (starts.empty()) break;
        const size_t at = starts[pick(starts.size())];
        size_t len = 0;
        while (at + len < header.size() && std::isdigit(static_cast<unsigned char>(header[at + len]))) ++len;
        header.replace(at, len, numbers[rng() % std::size(numbers)]);
        break;
      }
      case 7: {  // copy a slice of the header over another place
        const size_t from = pick(header.size()), to = pick(header.size());
        const size_t n = std::min({pick(16), header.size() - from, header.size() - to});
        header.replace(to, n, header.substr(from, n));
        break;
      }
    }
  }
  // The length field: usually right, sometimes off a little, sometimes absurd.
  const uint64_t n = header.size();
  const uint64_t lengths[] = {n + 1, n - 1, 0, ~uint64_t{0}, uint64_t{1} << 63, rng()};
  const uint64_t length = rng() % 4 == 0 ? lengths[rng() % std::size(lengths)] : n;
  std::string out = le64(length) + header + data;
  if (rng() % 16 == 0) out.resize(pick(out.size() + 1));  // a truncated file
  return out;
}

TEST(SafetensorsFuzz, MutatedFilesLoadOrThrowNeverCrash) {
  TempDir dir;
  const std::string seed = valid_fuzz_seed_file(dir);
  const std::string path = (dir / "mutant.safetensors").string();
  std::mt19937_64 rng(20240601);
  int accepted = 0, rejected = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    const std::string bytes = mutate(seed, rng);
    // A fresh file each time: ext4 flushes a truncated-and-rewritten file to
    // disk on close, which would make this test wait on the disk.
    std::filesystem::remove(path);
    write_bytes(path, bytes);
    std::shared_ptr<const SafetensorsFile> f;
    try {
      f = SafetensorsFile::open(path);
    } catch (const flint::Error&) {
      ++rejected;
      continue;
    }  // any other exception fails the test through GoogleTest
    ++accepted;
    uint64_t covered = 0;
    for (const SafetensorsEntry& e : f->entries()) {
      const Tensor v = f->view(e);
      const std::byte* base = v.storage()->data();
      ASSERT_GE(v.raw(), base + f->data_offset()) << "iteration " << iteration;
      ASSERT_LE(v.raw() + v.nbytes(), base + v.storage()->size()) << "iteration " << iteration;
      ASSERT_EQ(v.nbytes(), e.end - e.begin);
      unsigned sum = 0;  // touch every byte so that ASan sees any overrun
      for (uint64_t i = 0; i < v.nbytes(); ++i) sum += static_cast<unsigned>(v.raw()[i]);
      (void)sum;
      covered += v.nbytes();
    }
    EXPECT_EQ(f->data_offset() + covered, bytes.size()) << "iteration " << iteration;
  }
  RecordProperty("accepted", accepted);
  // Both outcomes must occur, or the mutations are not exercising the checks.
  EXPECT_GT(accepted, 30);
  EXPECT_GT(rejected, 1500);
}

}  // namespace
}  // namespace flint
