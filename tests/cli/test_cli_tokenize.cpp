// flint tokenize / detokenize on the real Llama 3 tokenizer directory.
#include <gtest/gtest.h>

#include "support/process_runner.h"
#include "support/test_support.h"

namespace flint::testing {
namespace {

std::string llama3() { return (shared_assets() / "tokenizers/llama3").string(); }

TEST(CliTokenize, PrintsIdsAndPieces) {
  FLINT_REQUIRE_ASSETS();
  auto r = run_flint({"tokenize", "--model", llama3(), "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "128000 9906 1917\n");
  r = run_flint({"tokenize", "--model", llama3(), "--no-bos", "--ids", "Hello world"});
  EXPECT_EQ(r.out, "9906 1917\n");
  r = run_flint({"tokenize", "--model", llama3(), "--pieces", "--no-bos", "Hello world\n"});
  EXPECT_EQ(r.out, "Hello Ġworld Ċ\n");
  // Empty text is still a text: just BOS.
  r = run_flint({"tokenize", "--model", llama3(), ""});
  EXPECT_EQ(r.out, "128000\n");
  // Special-token text is plain text here.
  r = run_flint({"tokenize", "--model", llama3(), "--no-bos", "<|eot_id|>"});
  EXPECT_EQ(r.out.find("128009"), std::string::npos) << r.out;
}

TEST(CliTokenize, FileBytesAreKeptExactly) {
  FLINT_REQUIRE_ASSETS();
  TempDir dir;
  write_bytes(dir / "in.txt", "  Hello\r\n\n\t");
  const auto r = run_flint({"tokenize", "-m", llama3(), "--no-bos", "--file", (dir / "in.txt").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto back = run_flint({"detokenize", "-m", llama3(), r.out});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(back.out, "  Hello\r\n\n\t");
}

TEST(CliTokenize, Detokenize) {
  FLINT_REQUIRE_ASSETS();
  auto r = run_flint({"detokenize", "--model", llama3(), "128000", "9906", "1917"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "<|begin_of_text|>Hello world");
  r = run_flint({"detokenize", "--model", llama3(), "9906, 1917"});
  EXPECT_EQ(r.out, "Hello world");
}

TEST(CliTokenize, ErrorsAreOneClearLine) {
  FLINT_REQUIRE_ASSETS();
  TempDir empty;
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"detokenize", "-m", llama3(), "9906", "128256"}, "token id 128256 is out of range"},
      {{"detokenize", "-m", llama3(), "12x"}, "'12x' is not a token id"},
      {{"detokenize", "-m", llama3(), "--", "-5"}, "token id -5 is out of range"},
      {{"tokenize", "-m", empty.path().string(), "x"}, "looked for tokenizer.json and tokenizer.model"},
      {{"tokenize", "-m", llama3()}, "give the text to tokenize, or --file"},
      {{"tokenize", "-m", llama3(), "--file", (empty / "nope.txt").string()}, "nope.txt"},
  };
  for (const Case& c : cases) {
    const auto r = run_flint(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.expected;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
}

}  // namespace
}  // namespace flint::testing
