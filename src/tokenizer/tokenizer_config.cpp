#include "tokenizer/tokenizer_config.h"

#include <charconv>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"

namespace flint {
namespace {

using nlohmann::json;

std::optional<bool> optional_bool(const json& j, const char* key, const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  FLINT_CHECK(it->is_boolean(), ErrorContext{.file = path, .field = key}, "expected true or false, got {}",
              it->type_name());
  return it->get<bool>();
}

// A token given as "text" or as an AddedToken object {"content": "text", ...}.
std::optional<std::string> optional_token(const json& j, const char* key, const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto content = it->find("content");
    FLINT_CHECK(content != it->end() && content->is_string(),
                ErrorContext{.file = path, .field = std::string(key) + ".content"}, "expected the token text");
    return content->get<std::string>();
  }
  fail({.file = path, .field = key}, "expected a token string or object, got {}", it->type_name());
}

bool flag(const json& object, const char* key, bool fallback, const std::string& path, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  FLINT_CHECK(it->is_boolean(), ErrorContext{.file = path, .field = where + "." + key}, "expected true or false");
  return it->get<bool>();
}

std::vector<AddedToken> parse_added_tokens_decoder(const json& decoder, const std::string& path) {
  FLINT_CHECK(decoder.is_object(), ErrorContext{.file = path, .field = "added_tokens_decoder"},
              "expected an object of id -> token");
  std::vector<AddedToken> tokens;
  for (const auto& [key, value] : decoder.items()) {
    const std::string field = "added_tokens_decoder." + key;
    AddedToken t;
    const auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), t.id);
    FLINT_CHECK(ec == std::errc() && ptr == key.data() + key.size() && t.id >= 0,
                ErrorContext{.file = path, .field = field}, "key is not a token id");
    FLINT_CHECK(value.is_object(), ErrorContext{.file = path, .field = field}, "expected an AddedToken object");
    const auto content = value.find("content");
    FLINT_CHECK(content != value.end() && content->is_string(),
                ErrorContext{.file = path, .field = field + ".content"}, "expected the token text");
    t.content = content->get<std::string>();
    t.special = flag(value, "special", false, path, field);
    t.lstrip = flag(value, "lstrip", false, path, field);
    t.rstrip = flag(value, "rstrip", false, path, field);
    t.normalized = flag(value, "normalized", !t.special, path, field);
    t.single_word = flag(value, "single_word", false, path, field);
    tokens.push_back(std::move(t));
  }
  return tokens;
}

std::string parse_chat_template(const json& value, const std::string& path) {
  if (value.is_null()) return {};
  if (value.is_string()) return value.get<std::string>();
  FLINT_CHECK(value.is_array(), ErrorContext{.file = path, .field = "chat_template"},
              "expected a string or a list of {{\"name\", \"template\"}}");
  std::string first;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& entry = value[i];
    const std::string field = "chat_template[" + std::to_string(i) + "]";
    FLINT_CHECK(entry.is_object() && entry.contains("name") && entry["name"].is_string() &&
                    entry.contains("template") && entry["template"].is_string(),
                ErrorContext{.file = path, .field = field}, "expected {{\"name\": string, \"template\": string}}");
    if (entry["name"] == "default") return entry["template"].get<std::string>();
    if (i == 0) first = entry["template"].get<std::string>();
  }
  // transformers takes "default" when there is one; with none, a named list has
  // no obvious choice, so the first one stands in.
  return first;
}

}  // namespace

TokenizerConfig load_tokenizer_config(const std::string& dir) {
  TokenizerConfig config;
  config.dir = dir;
  const std::string path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  if (std::filesystem::exists(path)) {
    json j;
    try {
      j = json::parse(read_file(path));
    } catch (const json::parse_error& e) {
      fail({.file = path}, "malformed JSON: {}", e.what());
    }
    FLINT_CHECK(j.is_object(), ErrorContext{.file = path}, "expected a JSON object");
    config.add_bos_token = optional_bool(j, "add_bos_token", path);
    config.add_eos_token = optional_bool(j, "add_eos_token", path);
    config.legacy = optional_bool(j, "legacy", path);
    config.bos_token = optional_token(j, "bos_token", path);
    config.eos_token = optional_token(j, "eos_token", path);
    config.pad_token = optional_token(j, "pad_token", path);
    config.unk_token = optional_token(j, "unk_token", path);
    if (const auto it = j.find("added_tokens_decoder"); it != j.end() && !it->is_null())
      config.added_tokens = parse_added_tokens_decoder(*it, path);
    if (const auto it = j.find("chat_template"); it != j.end()) {
      config.chat_template = parse_chat_template(*it, path);
      if (!config.chat_template.empty()) config.chat_template_origin = path;
    }
  }
  const std::string jinja = (std::filesystem::path(dir) / "chat_template.jinja").string();
  if (std::filesystem::exists(jinja)) {
    config.chat_template = read_file(jinja);
    config.chat_template_origin = jinja;
  }
  return config;
}

}  // namespace flint
