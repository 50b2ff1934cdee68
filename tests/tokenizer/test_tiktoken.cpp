// Meta's tiktoken tokenizer.model of Llama 3: the same ids as tokenizer.json.
#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"
#include "test_bpe_support.h"

namespace flint {
namespace {

using testing::llama3_json;
using testing::llama3_tiktoken;

TEST(Tiktoken, DefaultSpecialTokensAreThoseOfTokenizerJson) {
  FLINT_REQUIRE_ASSETS();
  // Without tokenizer_config.json the names come from the built-in Llama 3 list.
  const auto bare = make_tiktoken_tokenizer((testing::llama3_dir() / "tokenizer.model").string(), {});
  EXPECT_EQ(bare->kind(), "tiktoken");
  EXPECT_EQ(bare->vocab_size(), llama3_json().vocab_size());
  for (TokenId id = 128000; id < 128256; ++id) {
    EXPECT_EQ(bare->token_bytes(id), llama3_json().token_bytes(id)) << id;
    EXPECT_TRUE(bare->is_special(id)) << id;
  }
  EXPECT_EQ(bare->bos_id(), 128000);
  EXPECT_EQ(bare->eos_ids(), (std::vector<TokenId>{128001, 128008, 128009}));
  EXPECT_EQ(llama3_tiktoken().eos_ids(), llama3_json().eos_ids());
}

TEST(Tiktoken, EveryTokenHasTheSameBytesAsTokenizerJson) {
  FLINT_REQUIRE_ASSETS();
  for (TokenId id = 0; id < 128000; ++id) ASSERT_EQ(llama3_tiktoken().token_bytes(id), llama3_json().token_bytes(id)) << id;
}

TEST(Tiktoken, MatchesLlamaCppVectors) {
  FLINT_REQUIRE_ASSETS();
  for (const auto& c : testing::ggml_vocab_cases("ggml-vocab-llama-bpe.gguf"))
    EXPECT_EQ(llama3_tiktoken().encode(c.text, {.add_special = false}), c.ids) << c.text;
}

TEST(Tiktoken, SameIdsAsTokenizerJsonOnTheCorpus) {
  FLINT_REQUIRE_ASSETS();
  for (const std::string& text : testing::corpus_texts())
    for (const EncodeOptions o : {EncodeOptions{true, true}, EncodeOptions{true, false}, EncodeOptions{false, true},
                                  EncodeOptions{false, false}})
      EXPECT_EQ(llama3_tiktoken().encode(text, o), llama3_json().encode(text, o)) << text;
}

// Ranks as merge priorities against explicit merges, on real text: a novel
// (English, punctuation, names) and Python source.
TEST(Tiktoken, SameIdsAsTokenizerJsonOnLongText) {
  FLINT_REQUIRE_ASSETS();
  const auto assets = testing::shared_assets() / "datasets";
  for (const auto& file : {assets / "war-and-peace" / "war-and-peace.txt", assets / "python-heldout" / "heldout.py.txt"}) {
    if (!std::filesystem::exists(file)) continue;
    const std::string text = testing::read_all(file).substr(0, 400000);
    const auto a = llama3_tiktoken().encode(text);
    const auto b = llama3_json().encode(text);
    ASSERT_EQ(a.size(), b.size()) << file;
    EXPECT_TRUE(a == b) << file;
    EXPECT_EQ(llama3_json().decode(b), sanitize_utf8(text).insert(0, "<|begin_of_text|>"));
  }
}

TEST(Tiktoken, LoadTokenizerTellsTiktokenFromSentencePieceByContent) {
  FLINT_REQUIRE_ASSETS();
  testing::TempDir dir;
  std::filesystem::create_symlink(testing::llama3_dir() / "tokenizer.model", dir / "tokenizer.model");
  const auto t = load_tokenizer(dir.path().string());
  EXPECT_EQ(t->kind(), "tiktoken");
  EXPECT_EQ(t->encode("Hello world"), (std::vector<TokenId>{128000, 9906, 1917}));

  EXPECT_TRUE(looks_like_tiktoken(testing::read_all(testing::llama3_dir() / "tokenizer.model").substr(0, 4096)));
  EXPECT_FALSE(
      looks_like_tiktoken(testing::read_all(testing::shared_assets() / "tokenizers/llama2/tokenizer.model")));
}

struct BadRanks {
  const char* name;
  std::string contents;
  const char* expected;
};

TEST(Tiktoken, MalformedFilesNameTheLine) {
  // Bytes 0..255 as ranks 0..255, in base64.
  std::string bytes_file;
  for (int b = 0; b < 256; ++b) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes_file += fmt::format("{}{}== {}\n", alphabet[b >> 2], alphabet[(b & 3) << 4], b);
  }
  const std::vector<BadRanks> cases = {
      {"empty", "", "no tokens"},
      {"no space", bytes_file + "YWI=\n", "line 257: expected \"<base64 token> <rank>\""},
      {"bad base64", bytes_file + "YW!= 256\n", "line 257: bad base64 token 'YW!='"},
      {"bad padding", bytes_file + "YWJ 256\n", "bad base64 token"},
      {"non-zero tail bits", bytes_file + "YWJ= 256\n", "bad base64 token"},
      {"bad rank", bytes_file + "YWI= 12x\n", "line 257: bad rank '12x'"},
      {"negative rank", bytes_file + "YWI= -1\n", "bad rank '-1'"},
      {"duplicate rank", bytes_file + "YWI= 255\n", "line 257: rank 255 appears twice"},
      {"missing rank", bytes_file + "YWI= 300\n", "rank 256 is missing"},
      {"duplicate token", bytes_file + "YQ== 256\n", "have the same bytes"},
      {"missing byte", bytes_file.substr(0, bytes_file.find("AA== 0\n")) + bytes_file.substr(7) + "YWI= 0\n",
       "no token for byte 0x00"},
  };
  for (const BadRanks& c : cases) {
    testing::TempDir dir;
    testing::write_bytes(dir / "tokenizer.model", c.contents);
    try {
      make_tiktoken_tokenizer((dir / "tokenizer.model").string(), {});
      ADD_FAILURE() << c.name << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos)
          << c.name << ": got \"" << e.what() << "\", expected \"" << c.expected << "\"";
      EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << c.name;
    }
  }
  // The byte file itself is a valid (if useless) tokenizer.
  testing::TempDir dir;
  testing::write_bytes(dir / "tokenizer.model", bytes_file + "YWI= 256\n");
  const auto t = make_tiktoken_tokenizer((dir / "tokenizer.model").string(), {});
  EXPECT_EQ(t->encode("xab", {.add_special = false}), (std::vector<TokenId>{'x', 256}));
}

}  // namespace
}  // namespace flint
