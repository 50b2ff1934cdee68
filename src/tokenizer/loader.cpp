// load_tokenizer(): which tokenizer a model directory holds.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/byte_level_bpe.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/tokenizer_config.h"

namespace flint {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  namespace fs = std::filesystem;
  FLINT_CHECK(fs::is_directory(dir), ErrorContext{.file = dir}, "not a directory (expected a tokenizer directory)");
  const TokenizerConfig config = load_tokenizer_config(dir);

  // tokenizer.json wins, as with transformers' fast tokenizers.
  const std::string json_path = (fs::path(dir) / "tokenizer.json").string();
  if (fs::exists(json_path)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(json_path));
    } catch (const nlohmann::json::parse_error& e) {
      fail({.file = json_path}, "malformed JSON: {}", e.what());
    }
    FLINT_CHECK(j.is_object(), ErrorContext{.file = json_path}, "expected a JSON object");
    if (looks_like_byte_level_json(j)) return make_tokenizer_json_bpe(j, json_path, config);
    if (looks_like_sentencepiece_json(j)) return make_sentencepiece_json_tokenizer(j, json_path, config);
    std::string model_type = "?";
    if (j.contains("model") && j["model"].is_object() && j["model"].contains("type") && j["model"]["type"].is_string())
      model_type = j["model"]["type"].get<std::string>();
    fail({.file = json_path, .field = "model.type"},
         "unsupported tokenizer '{}': neither byte-level BPE (ByteLevel pre-tokenizer/decoder) nor "
         "SentencePiece-style (Metaspace / byte fallback)",
         model_type);
  }

  const std::string model_path = (fs::path(dir) / "tokenizer.model").string();
  if (fs::exists(model_path)) {
    // Decided by content: Meta ships Llama 3's tiktoken file under the same
    // name as Llama 2's SentencePiece protobuf.
    std::string head;
    {
      const auto file = MappedFile::open(model_path);
      const auto bytes = file->bytes();
      head.assign(reinterpret_cast<const char*>(bytes.data()), std::min<size_t>(bytes.size(), 4096));
    }
    FLINT_CHECK(!head.empty(), ErrorContext{.file = model_path}, "empty file");
    if (looks_like_tiktoken(head)) return make_tiktoken_tokenizer(model_path, config);
    return make_sentencepiece_tokenizer(model_path, config);
  }
  fail({.file = dir}, "no tokenizer found: looked for tokenizer.json and tokenizer.model");
}

}  // namespace flint
