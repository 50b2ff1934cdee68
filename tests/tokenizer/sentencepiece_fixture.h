// tests/tokenizer/sentencepiece_fixture.h — the Llama 2 reference written on
// the GPU machine by fixtures/make_tokenizer_fixtures.py (llama2.json,
// llama2-hf/), and a check of a tokenizer against every case and option of it.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "support/test_support.h"
#include "test_bpe_support.h"
#include "tokenizer/tokenizer.h"

namespace flint::testing {

// The tokenizer.json form transformers saved for Llama 2 (with its
// tokenizer_config.json and chat_template.jinja).
inline std::filesystem::path llama2_hf_dir() { return source_dir() / "tests/tokenizer/fixtures/llama2-hf"; }

// tests/tokenizer/fixtures/llama2.json; fails the test (and returns null) when
// it is missing, since it is committed.
inline nlohmann::json llama2_fixture() {
  auto fixture = hf_fixture("llama2");
  EXPECT_FALSE(fixture.is_null()) << "tests/tokenizer/fixtures/llama2.json is missing";
  return fixture;
}

inline std::string printable(const std::string& text) {
  std::string out = "text '";
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out + "'";
}

// Compares `t` with every case of the fixture: the four encodings (HF's
// split_special_tokens=False is parse_special), decode with and without
// skip_special_tokens, decode with the config's own clean-up flag, the pieces,
// and streaming through IncrementalDecoder. `block` names where a case keeps
// its expected values: "" for the case itself (transformers 5's AutoTokenizer
// on tokenizer.model), "hf_json" for the tokenizer.json it wrote, "slow" for
// transformers 4's slow LlamaTokenizer; the tokenizer facts (BOS, EOS,
// vocabulary size) are in "tokenizer" or "<block>_tokenizer". Returns the
// number of cases checked; every mismatch is a failure naming the text.
inline size_t expect_matches_llama2_fixture(const Tokenizer& t, const nlohmann::json& fixture,
                                            const std::string& block) {
  const auto& info = fixture.at(block.empty() ? std::string("tokenizer") : block + "_tokenizer");
  // decode_default is decode with the config's clean_up_tokenization_spaces,
  // which Flint never applies; Llama 2's is false.
  EXPECT_EQ(info.at("clean_up_tokenization_spaces"), false);
  EXPECT_EQ(t.vocab_size(), info.at("vocab_size").get<int32_t>());
  EXPECT_EQ(t.bos_id(), info.at("bos_token_id").get<TokenId>());
  EXPECT_EQ(t.eos_ids(), std::vector<TokenId>{info.at("eos_token_id").get<TokenId>()});
  size_t n = 0;
  for (const auto& row : fixture.at("cases")) {
    const std::string text = fixture_text(row);
    const auto& want = block.empty() ? row : row.at(block);
    const std::string what = printable(text);
    for (const char* key : {"ids", "ids_no_special", "ids_split_special", "ids_split_special_no_special", "decode"})
      EXPECT_FALSE(want.contains(std::string(key) + "_error")) << what << ": the fixture failed on " << key;
    EXPECT_EQ(t.encode(text, {true, true}), json_ids(want.at("ids"))) << what;
    EXPECT_EQ(t.encode(text, {false, true}), json_ids(want.at("ids_no_special"))) << what;
    EXPECT_EQ(t.encode(text, {true, false}), json_ids(want.at("ids_split_special"))) << what;
    EXPECT_EQ(t.encode(text, {false, false}), json_ids(want.at("ids_split_special_no_special"))) << what;

    const auto ids = json_ids(want.at("ids"));
    EXPECT_EQ(t.decode(ids), want.at("decode").get<std::string>()) << what;
    EXPECT_EQ(t.decode(ids, true), want.at("decode_skip_special").get<std::string>()) << what;
    EXPECT_EQ(t.decode(ids), want.at("decode_default").get<std::string>()) << what;
    for (bool skip : {false, true}) {
      IncrementalDecoder stream(t, skip);
      std::string streamed;
      for (TokenId id : ids) streamed += stream.push(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, want.at(skip ? "decode_skip_special" : "decode").get<std::string>())
          << what << " skip_special=" << skip;
    }

    std::vector<std::string> pieces;
    for (TokenId id : json_ids(want.at("ids_split_special_no_special"))) pieces.push_back(t.token_piece(id));
    EXPECT_EQ(pieces, want.at("pieces").get<std::vector<std::string>>()) << what;
    ++n;
  }
  return n;
}

}  // namespace flint::testing
