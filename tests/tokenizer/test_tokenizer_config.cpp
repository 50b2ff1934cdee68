// tokenizer_config.json (and chat_template.jinja) reading.
#include "tokenizer/tokenizer_config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "support/test_support.h"

namespace flint {
namespace {

TEST(TokenizerConfig, MissingFileGivesDefaults) {
  testing::TempDir dir;
  const TokenizerConfig c = load_tokenizer_config(dir.path().string());
  EXPECT_EQ(c.dir, dir.path().string());
  EXPECT_FALSE(c.add_bos_token.has_value());
  EXPECT_FALSE(c.bos_token.has_value());
  EXPECT_TRUE(c.added_tokens.empty());
  EXPECT_TRUE(c.chat_template.empty());
}

TEST(TokenizerConfig, ReadsLlama3AndLlama2Configs) {
  FLINT_REQUIRE_ASSETS();
  const auto l3 = load_tokenizer_config((testing::shared_assets() / "tokenizers/llama3").string());
  EXPECT_EQ(l3.bos_token, "<|begin_of_text|>");
  EXPECT_EQ(l3.eos_token, "<|eot_id|>");
  EXPECT_FALSE(l3.add_bos_token.has_value());
  ASSERT_EQ(l3.added_tokens.size(), 256u);
  EXPECT_EQ(l3.added_tokens[9].id, 128009);
  EXPECT_EQ(l3.added_tokens[9].content, "<|eot_id|>");
  EXPECT_TRUE(l3.added_tokens[9].special);
  EXPECT_NE(l3.chat_template.find("<|start_header_id|>"), std::string::npos);
  EXPECT_NE(l3.chat_template_origin.find("tokenizer_config.json"), std::string::npos);

  const auto l2 = load_tokenizer_config((testing::shared_assets() / "tokenizers/llama2").string());
  EXPECT_EQ(l2.add_bos_token, true);
  EXPECT_EQ(l2.add_eos_token, false);
  EXPECT_EQ(l2.bos_token, "<s>");
  EXPECT_EQ(l2.unk_token, "<unk>");
  EXPECT_FALSE(l2.pad_token.has_value());  // null
  EXPECT_NE(l2.chat_template.find("[INST]"), std::string::npos);
}

TEST(TokenizerConfig, TokensAsObjectsAndTemplateLists) {
  testing::TempDir dir;
  testing::write_text(dir / "tokenizer_config.json", R"({
    "bos_token": {"content": "<s>", "lstrip": false, "__type": "AddedToken"},
    "eos_token": "</s>", "legacy": false,
    "added_tokens_decoder": {"32000": {"content": "<pad>", "special": true, "rstrip": true},
                             "32001": {"content": "<x>"}},
    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  const auto c = load_tokenizer_config(dir.path().string());
  EXPECT_EQ(c.bos_token, "<s>");
  EXPECT_EQ(c.eos_token, "</s>");
  EXPECT_EQ(c.legacy, false);
  ASSERT_EQ(c.added_tokens.size(), 2u);
  EXPECT_EQ(c.added_tokens[0].id, 32000);
  EXPECT_TRUE(c.added_tokens[0].rstrip);
  EXPECT_FALSE(c.added_tokens[1].special);
  EXPECT_EQ(c.chat_template, "D");

  // chat_template.jinja beside it wins.
  testing::write_text(dir / "chat_template.jinja", "J{{ x }}");
  const auto j = load_tokenizer_config(dir.path().string());
  EXPECT_EQ(j.chat_template, "J{{ x }}");
  EXPECT_NE(j.chat_template_origin.find("chat_template.jinja"), std::string::npos);
}

struct BadConfig {
  const char* json;
  const char* expected;
};

TEST(TokenizerConfig, MalformedFieldsAreNamed) {
  const std::vector<BadConfig> cases = {
      {"{", "malformed JSON"},
      {"[1, 2]", "expected a JSON object"},
      {R"({"add_bos_token": "yes"})", "field 'add_bos_token': expected true or false"},
      {R"({"bos_token": 5})", "field 'bos_token': expected a token string or object"},
      {R"({"eos_token": {"lstrip": true}})", "field 'eos_token.content'"},
      {R"({"added_tokens_decoder": []})", "field 'added_tokens_decoder'"},
      {R"({"added_tokens_decoder": {"x1": {"content": "a"}}})", "field 'added_tokens_decoder.x1': key is not a token id"},
      {R"({"added_tokens_decoder": {"-4": {"content": "a"}}})", "added_tokens_decoder.-4"},
      {R"({"added_tokens_decoder": {"7": {"special": true}}})", "field 'added_tokens_decoder.7.content'"},
      {R"({"added_tokens_decoder": {"7": {"content": "a", "special": 1}}})", "added_tokens_decoder.7.special"},
      {R"({"chat_template": 3})", "field 'chat_template'"},
      {R"({"chat_template": [{"name": "default"}]})", "field 'chat_template[0]'"},
  };
  for (const BadConfig& c : cases) {
    testing::TempDir dir;
    testing::write_text(dir / "tokenizer_config.json", c.json);
    try {
      load_tokenizer_config(dir.path().string());
      ADD_FAILURE() << c.json << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << c.json << " -> " << e.what();
      EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace flint
