// Reading the byte-level BPE form of HF tokenizer.json.
#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/byte_level_bpe.h"

namespace flint {
namespace {

using nlohmann::json;

struct JsonReader {
  const std::string& path;

  [[noreturn]] void error(const std::string& field, const std::string& message) const {
    fail({.file = path, .field = field}, "{}", message);
  }
  const json& member(const json& object, const std::string& key, const std::string& field) const {
    if (!object.is_object()) error(field.substr(0, field.rfind('.')), "expected an object");
    const auto it = object.find(key);
    if (it == object.end()) error(field, "missing");
    return *it;
  }
  std::string string(const json& value, const std::string& field) const {
    if (!value.is_string()) error(field, std::string("expected a string, got ") + value.type_name());
    return value.get<std::string>();
  }
  bool optional_bool(const json& object, const char* key, bool fallback, const std::string& field) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) error(field + "." + key, "expected true or false");
    return it->get<bool>();
  }
};

bool has_type(const json& node, std::string_view type) {
  if (!node.is_object()) return false;
  if (const auto t = node.find("type"); t != node.end() && t->is_string() && *t == type) return true;
  for (const char* list : {"pretokenizers", "decoders", "processors", "normalizers"})
    if (const auto it = node.find(list); it != node.end() && it->is_array())
      for (const json& child : *it)
        if (has_type(child, type)) return true;
  return false;
}

// Vocabulary: byte-level strings -> raw bytes, indexed by id.
void read_vocab(const JsonReader& r, const json& vocab, std::vector<std::string>& bytes, std::vector<bool>& present) {
  if (!vocab.is_object()) r.error("model.vocab", "expected an object of token -> id");
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t{1} << 31))
      r.error("model.vocab." + token, "expected a non-negative integer id");
    max_id = std::max(max_id, id.get<int64_t>());
  }
  bytes.assign(static_cast<size_t>(max_id + 1), {});
  present.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id_json] : vocab.items()) {
    const auto id = static_cast<size_t>(id_json.get<int64_t>());
    if (present[id]) r.error("model.vocab." + token, fmt::format("id {} is used twice", id));
    // A string outside the byte alphabet cannot come out of the byte-level
    // pre-tokenizer; keep its UTF-8 so that it still decodes to something.
    bytes[id] = byte_level_to_bytes(token).value_or(token);
    present[id] = true;
  }
}

// Merges as raw byte pairs; whether both sides are tokens is the model's check.
std::vector<std::pair<std::string, std::string>> read_merges(const JsonReader& r, const json& merges) {
  if (!merges.is_array()) r.error("model.merges", "expected a list");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  auto bytes_of = [&](const std::string& token) { return byte_level_to_bytes(token).value_or(token); };
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string field = fmt::format("model.merges[{}]", i);
    const json& m = merges[i];
    if (m.is_string()) {
      // "left right": byte-level tokens never hold a plain space.
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 >= s.size() ||
          s.find(' ', space + 1) != std::string::npos)
        r.error(field, "expected \"left right\", got \"" + s + "\"");
      out.emplace_back(bytes_of(s.substr(0, space)), bytes_of(s.substr(space + 1)));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(bytes_of(m[0].get<std::string>()), bytes_of(m[1].get<std::string>()));
    } else {
      r.error(field, "expected \"left right\" or [\"left\", \"right\"]");
    }
  }
  return out;
}

std::vector<AddedToken> read_added_tokens(const JsonReader& r, const json& root) {
  std::vector<AddedToken> out;
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return out;
  if (!it->is_array()) r.error("added_tokens", "expected a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string field = fmt::format("added_tokens[{}]", i);
    const json& t = (*it)[i];
    AddedToken a;
    const json& id = r.member(t, "id", field + ".id");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (int64_t{1} << 31))
      r.error(field + ".id", "expected a non-negative integer");
    a.id = static_cast<TokenId>(id.get<int64_t>());
    a.content = r.string(r.member(t, "content", field + ".content"), field + ".content");
    if (a.content.empty()) r.error(field + ".content", "is empty");
    a.special = r.optional_bool(t, "special", false, field);
    a.lstrip = r.optional_bool(t, "lstrip", false, field);
    a.rstrip = r.optional_bool(t, "rstrip", false, field);
    a.normalized = r.optional_bool(t, "normalized", !a.special, field);
    a.single_word = r.optional_bool(t, "single_word", false, field);
    out.push_back(std::move(a));
  }
  return out;
}

void read_pretokenizer(const JsonReader& r, const json& node, const std::string& field, ByteLevelBpeSpec& spec,
                       bool first) {
  if (node.is_null()) return;
  const std::string type = r.string(r.member(node, "type", field + ".type"), field + ".type");
  if (type == "Sequence") {
    const json& list = r.member(node, "pretokenizers", field + ".pretokenizers");
    if (!list.is_array()) r.error(field + ".pretokenizers", "expected a list");
    for (size_t i = 0; i < list.size(); ++i)
      read_pretokenizer(r, list[i], fmt::format("{}.pretokenizers[{}]", field, i), spec, first && i == 0);
  } else if (type == "Split") {
    const json& pattern = r.member(node, "pattern", field + ".pattern");
    std::string regex;
    if (pattern.is_object() && pattern.contains("Regex")) {
      regex = r.string(pattern["Regex"], field + ".pattern.Regex");
    } else if (pattern.is_object() && pattern.contains("String")) {
      regex = regex_quote(r.string(pattern["String"], field + ".pattern.String"));
    } else {
      r.error(field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    const auto behavior = node.find("behavior");
    if (behavior == node.end() || *behavior != "Isolated")
      r.error(field + ".behavior", "only \"Isolated\" is supported");
    if (r.optional_bool(node, "invert", false, field)) r.error(field + ".invert", "only false is supported");
    spec.pretokenizer.add_split(regex, {.file = r.path, .field = field + ".pattern"});
  } else if (type == "ByteLevel") {
    const bool prefix_space = r.optional_bool(node, "add_prefix_space", false, field);
    // HF would add the space to every piece of an earlier split; only the
    // first step of the chain gets the plain per-text meaning.
    if (prefix_space && !first) r.error(field + ".add_prefix_space", "true is supported only on the first step");
    spec.add_prefix_space = spec.add_prefix_space || prefix_space;
    if (r.optional_bool(node, "use_regex", true, field))
      spec.pretokenizer.add_split(kGpt2SplitPattern, {.file = r.path, .field = field});
  } else {
    r.error(field + ".type", "unsupported pre-tokenizer '" + type + "' for byte-level BPE");
  }
}

// TemplateProcessing "single": special tokens before and after $A.
void read_post_processor(const JsonReader& r, const json& node, const std::string& field, ByteLevelBpeSpec& spec) {
  if (node.is_null()) return;
  const std::string type = r.string(r.member(node, "type", field + ".type"), field + ".type");
  if (type == "Sequence") {
    const json& list = r.member(node, "processors", field + ".processors");
    if (!list.is_array()) r.error(field + ".processors", "expected a list");
    for (size_t i = 0; i < list.size(); ++i)
      read_post_processor(r, list[i], fmt::format("{}.processors[{}]", field, i), spec);
  } else if (type == "TemplateProcessing") {
    const json& single = r.member(node, "single", field + ".single");
    const json& specials = r.member(node, "special_tokens", field + ".special_tokens");
    if (!single.is_array()) r.error(field + ".single", "expected a list");
    bool after_text = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string item_field = fmt::format("{}.single[{}]", field, i);
      const json& item = single[i];
      if (item.is_object() && item.contains("Sequence")) {
        after_text = true;
      } else if (item.is_object() && item.contains("SpecialToken")) {
        const std::string name =
            r.string(r.member(item["SpecialToken"], "id", item_field + ".SpecialToken.id"), item_field);
        const json& entry = r.member(specials, name, field + ".special_tokens." + name);
        const json& ids = r.member(entry, "ids", field + ".special_tokens." + name + ".ids");
        if (!ids.is_array()) r.error(field + ".special_tokens." + name + ".ids", "expected a list");
        for (const json& id : ids) {
          if (!id.is_number_integer()) r.error(field + ".special_tokens." + name + ".ids", "expected integers");
          (after_text ? spec.template_suffix : spec.template_prefix).push_back(static_cast<TokenId>(id.get<int64_t>()));
        }
      } else {
        r.error(item_field, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
    }
  } else if (type != "ByteLevel") {  // ByteLevel only adjusts offsets
    r.error(field + ".type", "unsupported post-processor '" + type + "'");
  }
}

}  // namespace

bool looks_like_byte_level_json(const json& j) {
  if (!j.is_object()) return false;
  const auto pre = j.find("pre_tokenizer");
  const auto dec = j.find("decoder");
  return (pre != j.end() && has_type(*pre, "ByteLevel")) || (dec != j.end() && has_type(*dec, "ByteLevel"));
}

std::unique_ptr<Tokenizer> make_tokenizer_json_bpe(const json& root, const std::string& path,
                                                   const TokenizerConfig& config) {
  const JsonReader r{path};
  if (!root.is_object()) r.error("", "expected a JSON object");
  const json& model = r.member(root, "model", "model");
  const std::string type = r.string(r.member(model, "type", "model.type"), "model.type");
  if (type != "BPE") r.error("model.type", "byte-level tokenizer.json needs a BPE model, got '" + type + "'");
  if (r.optional_bool(model, "byte_fallback", false, "model"))
    r.error("model.byte_fallback", "byte fallback is not used by byte-level BPE");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const auto it = model.find(key); it != model.end() && !it->is_null() && *it != "")
      r.error(std::string("model.") + key, "is not supported");
  if (const auto it = model.find("dropout"); it != model.end() && !it->is_null())
    r.error("model.dropout", "BPE dropout is not supported (inference is deterministic)");
  if (const auto it = root.find("normalizer"); it != root.end() && !it->is_null())
    r.error("normalizer", "normalizers are not supported for byte-level BPE");

  const json& vocab = r.member(model, "vocab", "model.vocab");
  std::vector<std::string> bytes;
  std::vector<bool> present;
  read_vocab(r, vocab, bytes, present);
  const auto merges = read_merges(r, r.member(model, "merges", "model.merges"));
  const bool ignore_merges = r.optional_bool(model, "ignore_merges", false, "model");

  ByteLevelBpeSpec spec{
      .origin = path,
      .kind = "bpe",
      .model = BpeModel::from_merges(std::move(bytes), std::move(present), merges, ignore_merges,
                                     {.file = path, .field = "model"}),
  };
  if (const auto it = root.find("pre_tokenizer"); it != root.end())
    read_pretokenizer(r, *it, "pre_tokenizer", spec, true);
  if (const auto it = root.find("post_processor"); it != root.end())
    read_post_processor(r, *it, "post_processor", spec);
  spec.added_tokens = read_added_tokens(r, root);
  // tokenizer_config.json may know added tokens the JSON lacks (transformers adds them).
  for (const AddedToken& t : config.added_tokens) {
    const bool known = std::any_of(spec.added_tokens.begin(), spec.added_tokens.end(),
                                   [&](const AddedToken& a) { return a.id == t.id; });
    if (!known) spec.added_tokens.push_back(t);
  }
  return make_byte_level_bpe_tokenizer(std::move(spec), config);
}

}  // namespace flint
