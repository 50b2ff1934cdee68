// The HF tokenizer.json form of a SentencePiece BPE model, encoded natively:
// normalizer (Prepend/Replace) or Metaspace pre-tokenizer, then BPE with merges
// by rank and byte fallback, as the `tokenizers` library runs it.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/sentencepiece.h"
#include "tokenizer/sentencepiece_common.h"

namespace flint {
namespace {

using json = nlohmann::json;
using spm::Piece;
using spm::PieceType;

// Ids above this are refused: a vocabulary that large is a corrupt file, and
// the id space is allocated densely.
constexpr int64_t kMaxVocab = 1 << 24;

struct NormalizerStep {
  enum class Kind { prepend, replace } kind;
  std::string text;     // prepended text, or the pattern replaced
  std::string content;  // replacement
};

struct Metaspace {
  enum class Scheme { always, first, never };
  std::string replacement = std::string(spm::kSpaceMark);
  Scheme scheme = Scheme::always;
  bool split = true;
};

const json* member(const json& node, const char* key) {
  if (!node.is_object()) return nullptr;
  const auto it = node.find(key);
  return it == node.end() || it->is_null() ? nullptr : &*it;
}

std::string type_of(const json& node) {
  const json* type = member(node, "type");
  return type && type->is_string() ? type->get<std::string>() : std::string();
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  while (true) {
    const size_t at = s.find(from, i);
    if (at == std::string::npos) break;
    out.append(s, i, at - i);
    out.append(to);
    i = at + from.size();
  }
  if (i == 0) return;
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

size_t utf8_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;  // not reached for sanitized text
}

class SentencePieceJsonTokenizer final : public spm::SpmTokenizerBase {
 public:
  SentencePieceJsonTokenizer(const json& root, const std::string& path, const TokenizerConfig& config) : path_(path) {
    FLINT_CHECK(root.is_object(), where(""), "tokenizer.json is not a JSON object");
    const json* model = member(root, "model");
    FLINT_CHECK(model && model->is_object(), where("model"), "missing or not an object");
    const std::string type = type_of(*model);
    FLINT_CHECK(type.empty() || type == "BPE", where("model.type"), "'{}' is not a BPE model", type);
    read_vocab(*model, root);
    read_model_options(*model);
    read_merges(*model);
    if (const json* n = member(root, "normalizer")) read_normalizer(*n, "normalizer");
    if (const json* p = member(root, "pre_tokenizer")) read_pre_tokenizer(*p, "pre_tokenizer");
    if (const json* d = member(root, "decoder")) strip_leading_space_ = decoder_strips(*d);
    add_config_tokens(config);
    read_special_policy(member(root, "post_processor"), config);
  }

  std::string kind() const override { return "sentencepiece"; }

 protected:
  void encode_segment(std::string_view text, bool at_start, std::vector<TokenId>& out) const override {
    std::string s(text);
    for (const auto& step : normalizer_) {
      if (step.kind == NormalizerStep::Kind::prepend) {
        if (!s.empty()) s.insert(0, step.text);
      } else {
        replace_all(s, step.text, step.content);
      }
    }
    if (!metaspace_) {
      if (!s.empty()) bpe(s, out);
      return;
    }
    const Metaspace& ms = *metaspace_;
    replace_all(s, " ", ms.replacement);
    const bool prepend = ms.scheme == Metaspace::Scheme::always || (ms.scheme == Metaspace::Scheme::first && at_start);
    if (prepend && !s.empty() && !s.starts_with(ms.replacement)) s.insert(0, ms.replacement);
    if (!ms.split) {
      if (!s.empty()) bpe(s, out);
      return;
    }
    // Split before every replacement mark (MergedWithNext): "▁a▁b" -> "▁a", "▁b".
    size_t start = 0;
    while (start < s.size()) {
      size_t next = s.find(ms.replacement, start + 1);
      if (next == std::string::npos) next = s.size();
      bpe(std::string_view(s).substr(start, next - start), out);
      start = next;
    }
  }

 private:
  ErrorContext where(std::string field) const { return {.file = path_, .field = std::move(field)}; }

  std::optional<TokenId> vocab_id(std::string_view text) const {
    auto id = pieces_.find(text);
    if (id && *id < model_vocab_size_ && !shadowed_[static_cast<size_t>(*id)]) return id;
    return std::nullopt;
  }

  void read_vocab(const json& model, const json& root) {
    const json* vocab = member(model, "vocab");
    FLINT_CHECK(vocab && vocab->is_object(), where("model.vocab"), "missing or not an object of token -> id");
    std::vector<std::optional<std::string>> texts;
    auto place = [&](int64_t id, const std::string& text, const std::string& field) {
      FLINT_CHECK(id >= 0 && id < kMaxVocab, where(field), "id {} of '{}' is out of range", id, text);
      if (static_cast<size_t>(id) >= texts.size()) texts.resize(static_cast<size_t>(id) + 1);
      return &texts[static_cast<size_t>(id)];
    };
    for (const auto& [text, id] : vocab->items()) {
      FLINT_CHECK(id.is_number_integer(), where("model.vocab"), "id of '{}' is not an integer", text);
      auto* slot = place(id.get<int64_t>(), text, "model.vocab");
      FLINT_CHECK(!slot->has_value(), where("model.vocab"), "id {} is given to both '{}' and '{}'", id.get<int64_t>(),
                  **slot, text);
      *slot = text;
    }
    model_vocab_size_ = static_cast<TokenId>(texts.size());

    std::vector<AddedToken> added;
    if (const json* list = member(root, "added_tokens")) {
      FLINT_CHECK(list->is_array(), where("added_tokens"), "not an array");
      for (size_t i = 0; i < list->size(); ++i) {
        const json& t = (*list)[i];
        const std::string field = fmt::format("added_tokens[{}]", i);
        const json* id = member(t, "id");
        const json* content = member(t, "content");
        FLINT_CHECK(id && id->is_number_integer() && content && content->is_string(), where(field),
                    "needs an integer 'id' and a string 'content'");
        auto flag = [&](const char* key, bool fallback) {
          const json* v = member(t, key);
          return v && v->is_boolean() ? v->get<bool>() : fallback;
        };
        AddedToken token{.id = 0,
                         .content = content->get<std::string>(),
                         .special = flag("special", false),
                         .lstrip = flag("lstrip", false),
                         .rstrip = flag("rstrip", false),
                         .normalized = flag("normalized", false),
                         .single_word = flag("single_word", false)};
        FLINT_CHECK(!token.content.empty(), where(field), "empty 'content'");
        const int64_t raw_id = id->get<int64_t>();
        auto* slot = place(raw_id, token.content, field);
        token.id = static_cast<TokenId>(raw_id);
        // An added token over a vocabulary entry takes its place, as in HF's
        // AddedVocabulary (which is consulted first for id -> token).
        *slot = token.content;
        added.push_back(std::move(token));
      }
    }
    shadowed_.assign(texts.size(), false);
    for (size_t id = 0; id < texts.size(); ++id) {
      FLINT_CHECK(texts[id].has_value(), where("model.vocab"), "no token has id {} (ids must run 0..{} without gaps)",
                  id, texts.size() - 1);
      Piece piece{.text = std::move(*texts[id])};
      if (spm::byte_piece_value(piece.text)) piece.type = PieceType::byte;
      pieces_.add(std::move(piece));
    }
    for (const auto& token : added) {
      Piece& piece = pieces_.mutable_at(token.id);
      piece.type = token.special ? PieceType::control : PieceType::user_defined;
      piece.special = token.special;
      if (token.id < model_vocab_size_ && vocab->find(token.content) == vocab->end())
        shadowed_[static_cast<size_t>(token.id)] = true;  // the vocab's own text at this id is gone
      pieces_.reindex(token.id, token.content);
      splitter_.add({.text = token.content,
                     .id = token.id,
                     .special = token.special,
                     .lstrip = token.lstrip,
                     .rstrip = token.rstrip});
    }
  }

  void read_model_options(const json& model) {
    auto flag = [&](const char* key, bool fallback) {
      const json* v = member(model, key);
      if (!v) return fallback;
      FLINT_CHECK(v->is_boolean(), where(std::string("model.") + key), "not a boolean");
      return v->get<bool>();
    };
    byte_fallback_ = flag("byte_fallback", false);
    fuse_unk_ = flag("fuse_unk", false);
    ignore_merges_ = flag("ignore_merges", false);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json* v = member(model, key);
      FLINT_CHECK(!v || (v->is_string() && v->get<std::string>().empty()), where(std::string("model.") + key),
                  "is not supported for a SentencePiece-style BPE");
    }
    if (const json* dropout = member(model, "dropout")) {
      FLINT_CHECK(dropout->is_number() && dropout->get<double>() == 0.0, where("model.dropout"),
                  "BPE dropout is not supported (inference must be deterministic)");
    }
    if (const json* unk = member(model, "unk_token")) {
      FLINT_CHECK(unk->is_string(), where("model.unk_token"), "not a string");
      unk_id_ = vocab_id(unk->get<std::string>());
      FLINT_CHECK(unk_id_.has_value(), where("model.unk_token"), "'{}' is not in the vocabulary",
                  unk->get<std::string>());
      Piece& piece = pieces_.mutable_at(*unk_id_);
      if (piece.type == PieceType::normal) piece.type = PieceType::unknown;
    }
    char name[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      byte_ids_[static_cast<size_t>(b)] = vocab_id(name);
    }
  }

  void read_merges(const json& model) {
    const json* merges = member(model, "merges");
    FLINT_CHECK(merges && merges->is_array(), where("model.merges"), "missing or not an array");
    merges_.reserve(merges->size());
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const json& m = (*merges)[rank];
      const std::string field = fmt::format("model.merges[{}]", rank);
      std::string left, right;
      if (m.is_string()) {
        const std::string& line = m.get_ref<const std::string&>();
        const size_t space = line.find(' ');
        FLINT_CHECK(space != std::string::npos && line.find(' ', space + 1) == std::string::npos, where(field),
                    "'{}' is not of the form \"left right\"", line);
        left = line.substr(0, space);
        right = line.substr(space + 1);
      } else {
        FLINT_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), where(field),
                    "a merge is \"left right\" or [left, right]");
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      }
      const auto a = vocab_id(left), b = vocab_id(right), merged = vocab_id(left + right);
      FLINT_CHECK(a.has_value(), where(field), "'{}' is not in the vocabulary", left);
      FLINT_CHECK(b.has_value(), where(field), "'{}' is not in the vocabulary", right);
      FLINT_CHECK(merged.has_value(), where(field), "the merged token '{}' is not in the vocabulary", left + right);
      // A repeated pair keeps its last rank, as tokenizers' hash map does.
      merges_[pair_key(*a, *b)] = {static_cast<uint32_t>(rank), *merged};
    }
  }

  void read_normalizer(const json& node, const std::string& field) {
    const std::string type = type_of(node);
    if (type == "Sequence") {
      const json* list = member(node, "normalizers");
      FLINT_CHECK(list && list->is_array(), where(field + ".normalizers"), "missing or not an array");
      for (size_t i = 0; i < list->size(); ++i) read_normalizer((*list)[i], fmt::format("{}.normalizers[{}]", field, i));
    } else if (type == "Prepend") {
      const json* text = member(node, "prepend");
      FLINT_CHECK(text && text->is_string(), where(field + ".prepend"), "missing or not a string");
      normalizer_.push_back({NormalizerStep::Kind::prepend, text->get<std::string>(), {}});
    } else if (type == "Replace") {
      const json* pattern = member(node, "pattern");
      const json* literal = pattern ? member(*pattern, "String") : nullptr;
      const json* content = member(node, "content");
      FLINT_CHECK(literal && literal->is_string() && !literal->get<std::string>().empty(), where(field + ".pattern"),
                  "only a non-empty {{\"String\": ...}} pattern is supported");
      FLINT_CHECK(content && content->is_string(), where(field + ".content"), "missing or not a string");
      normalizer_.push_back({NormalizerStep::Kind::replace, literal->get<std::string>(), content->get<std::string>()});
    } else {
      fail(where(field + ".type"), "normalizer '{}' is not supported for a SentencePiece-style BPE", type);
    }
  }

  void read_pre_tokenizer(const json& node, const std::string& field) {
    const std::string type = type_of(node);
    if (type == "Sequence") {
      const json* list = member(node, "pretokenizers");
      FLINT_CHECK(list && list->is_array(), where(field + ".pretokenizers"), "missing or not an array");
      for (size_t i = 0; i < list->size(); ++i)
        read_pre_tokenizer((*list)[i], fmt::format("{}.pretokenizers[{}]", field, i));
      return;
    }
    FLINT_CHECK(type == "Metaspace", where(field + ".type"),
                "pre-tokenizer '{}' is not supported for a SentencePiece-style BPE", type);
    FLINT_CHECK(!metaspace_, where(field), "more than one Metaspace pre-tokenizer");
    Metaspace ms;
    if (const json* r = member(node, "replacement")) {
      FLINT_CHECK(r->is_string() && !r->get<std::string>().empty(), where(field + ".replacement"), "not a string");
      ms.replacement = r->get<std::string>();
    }
    if (const json* scheme = member(node, "prepend_scheme")) {
      const std::string s = scheme->is_string() ? scheme->get<std::string>() : "";
      if (s == "always")
        ms.scheme = Metaspace::Scheme::always;
      else if (s == "first")
        ms.scheme = Metaspace::Scheme::first;
      else if (s == "never")
        ms.scheme = Metaspace::Scheme::never;
      else
        fail(where(field + ".prepend_scheme"), "'{}' is not always, first or never", s);
    } else if (const json* add = member(node, "add_prefix_space")) {  // files before tokenizers 0.14
      FLINT_CHECK(add->is_boolean(), where(field + ".add_prefix_space"), "not a boolean");
      ms.scheme = add->get<bool>() ? Metaspace::Scheme::always : Metaspace::Scheme::never;
    }
    if (const json* split = member(node, "split")) {
      FLINT_CHECK(split->is_boolean(), where(field + ".split"), "not a boolean");
      ms.split = split->get<bool>();
    }
    metaspace_ = std::move(ms);
  }

  // Whether the decoder chain ends by dropping the space the encoder put in
  // front (Strip(" ", 1, 0), or a Metaspace decoder that prepends).
  static bool decoder_strips(const json& node) {
    const std::string type = type_of(node);
    if (type == "Sequence") {
      const json* list = member(node, "decoders");
      if (!list || !list->is_array()) return false;
      return std::any_of(list->begin(), list->end(), [](const json& d) { return decoder_strips(d); });
    }
    if (type == "Strip") {
      const json* start = member(node, "start");
      return start && start->is_number_integer() && start->get<int64_t>() >= 1;
    }
    if (type == "Metaspace") {
      const json* scheme = member(node, "prepend_scheme");
      if (scheme) return !(scheme->is_string() && scheme->get<std::string>() == "never");
      const json* add = member(node, "add_prefix_space");
      return !add || (add->is_boolean() && add->get<bool>());
    }
    return false;
  }

  void read_special_policy(const json* post, const TokenizerConfig& config) {
    // TemplateProcessing "single": special tokens before $A are the BOS, after it the EOS.
    std::optional<TokenId> template_bos, template_eos;
    bool have_template = false;
    if (post && type_of(*post) == "TemplateProcessing") {
      const json* single = member(*post, "single");
      FLINT_CHECK(single && single->is_array(), where("post_processor.single"), "missing or not an array");
      have_template = true;
      bool seen_sequence = false;
      for (const json& item : *single) {
        if (member(item, "Sequence")) {
          seen_sequence = true;
          continue;
        }
        const json* special = member(item, "SpecialToken");
        const json* name = special ? member(*special, "id") : nullptr;
        FLINT_CHECK(name && name->is_string(), where("post_processor.single"), "an item is neither Sequence nor SpecialToken");
        std::optional<TokenId> id;
        const json* table = member(*post, "special_tokens");
        const json* entry = table ? member(*table, name->get<std::string>().c_str()) : nullptr;
        const json* ids = entry ? member(*entry, "ids") : nullptr;
        if (ids && ids->is_array() && !ids->empty() && (*ids)[0].is_number_integer())
          id = static_cast<TokenId>((*ids)[0].get<int64_t>());
        else
          id = pieces_.find(name->get<std::string>());
        FLINT_CHECK(id && *id >= 0 && *id < pieces_.size(), where("post_processor.special_tokens"),
                    "token '{}' is not in the vocabulary", name->get<std::string>());
        (seen_sequence ? template_eos : template_bos) = id;
      }
    }
    const std::string config_file = config.dir.empty() ? path_ : config.dir + "/tokenizer_config.json";
    auto resolve = [&](const std::optional<std::string>& text, std::optional<TokenId> from_template,
                       const char* fallback, const char* field) -> std::optional<TokenId> {
      if (text) {
        auto id = pieces_.find(*text);
        FLINT_CHECK(id.has_value(), ErrorContext{.file = config_file, .field = field}, "token '{}' is not in {}", *text,
                    path_);
        return id;
      }
      if (from_template) return from_template;
      return pieces_.find(fallback);
    };
    policy_.bos = resolve(config.bos_token, template_bos, "<s>", "bos_token");
    if (auto eos = resolve(config.eos_token, template_eos, "</s>", "eos_token")) policy_.eos.push_back(*eos);
    // transformers' Llama tokenizer rebuilds the post-processor from
    // add_bos_token / add_eos_token, so those win over the file's template.
    policy_.add_bos = config.add_bos_token.value_or(have_template ? template_bos.has_value() : true);
    policy_.add_eos = config.add_eos_token.value_or(have_template && template_eos.has_value());
  }

  static uint64_t pair_key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // One word through BPE: characters (byte pieces for unknown ones), then the
  // lowest-ranked adjacent pair merged until none is left — tokenizers'
  // Word::merge_all, O(n log n) in the word length.
  void bpe(std::string_view word, std::vector<TokenId>& out) const {
    if (ignore_merges_) {
      if (auto id = vocab_id(word)) {
        out.push_back(*id);
        return;
      }
    }
    struct Symbol {
      TokenId id;
      int32_t prev, next;
      bool alive;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    auto push = [&](TokenId id) {
      const auto n = static_cast<int32_t>(symbols.size());
      symbols.push_back({id, n - 1, -1, true});
      if (n > 0) symbols[static_cast<size_t>(n - 1)].next = n;
    };
    bool pending_unk = false;
    for (size_t i = 0; i < word.size();) {
      const size_t len = std::min(utf8_length(static_cast<uint8_t>(word[i])), word.size() - i);
      const std::string_view ch = word.substr(i, len);
      i += len;
      if (auto id = vocab_id(ch)) {
        if (pending_unk) push(*unk_id_);
        pending_unk = false;
        push(*id);
        continue;
      }
      if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<uint8_t>(c)].has_value(); })) {
        for (char c : ch) push(*byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
      if (!unk_id_) continue;  // tokenizers drops it when there is no unk token
      if (pending_unk && !fuse_unk_) push(*unk_id_);
      pending_unk = true;
    }
    if (pending_unk) push(*unk_id_);

    struct Candidate {
      uint32_t rank;
      int32_t pos;
      TokenId merged;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto consider = [&](int32_t pos) {
      if (pos < 0) return;
      const Symbol& left = symbols[static_cast<size_t>(pos)];
      if (left.next < 0) return;
      const auto it = merges_.find(pair_key(left.id, symbols[static_cast<size_t>(left.next)].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.merged});
    };
    for (int32_t p = 0; p + 1 < static_cast<int32_t>(symbols.size()); ++p) consider(p);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = symbols[static_cast<size_t>(left.next)];
      const auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.merged != top.merged) continue;  // stale entry
      left.id = top.merged;
      right.alive = false;
      left.next = right.next;
      if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
      consider(left.prev);
      consider(top.pos);
    }
    for (int32_t p = symbols.empty() ? -1 : 0; p >= 0; p = symbols[static_cast<size_t>(p)].next)
      out.push_back(symbols[static_cast<size_t>(p)].id);
  }

  struct Merge {
    uint32_t rank;
    TokenId merged;
  };

  std::string path_;
  TokenId model_vocab_size_ = 0;   // ids below are the BPE model's vocabulary
  std::vector<bool> shadowed_;     // vocab ids whose text an added token replaced
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<std::optional<TokenId>, 256> byte_ids_{};
  std::optional<TokenId> unk_id_;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::vector<NormalizerStep> normalizer_;
  std::optional<Metaspace> metaspace_;
};

bool has_type(const json& node, std::string_view type, const char* list_key) {
  if (!node.is_object()) return false;
  if (type_of(node) == type) return true;
  const json* list = member(node, list_key);
  if (!list || !list->is_array()) return false;
  return std::any_of(list->begin(), list->end(), [&](const json& n) { return has_type(n, type, list_key); });
}

bool normalizer_marks_spaces(const json& node) {
  if (!node.is_object()) return false;
  const std::string type = type_of(node);
  if (type == "Sequence") {
    const json* list = member(node, "normalizers");
    return list && list->is_array() && std::any_of(list->begin(), list->end(), normalizer_marks_spaces);
  }
  const json* text = member(node, type == "Prepend" ? "prepend" : "content");
  return (type == "Prepend" || type == "Replace") && text && text->is_string() &&
         text->get<std::string>() == spm::kSpaceMark;
}

}  // namespace

bool looks_like_sentencepiece_json(const nlohmann::json& root) {
  try {
    const json* model = member(root, "model");
    if (!model || !model->is_object()) return false;
    const std::string type = type_of(*model);
    if (!type.empty() && type != "BPE") return false;
    static const json null_json;
    const json& pre = member(root, "pre_tokenizer") ? root["pre_tokenizer"] : null_json;
    const json& dec = member(root, "decoder") ? root["decoder"] : null_json;
    const json& norm = member(root, "normalizer") ? root["normalizer"] : null_json;
    if (has_type(pre, "ByteLevel", "pretokenizers") || has_type(dec, "ByteLevel", "decoders")) return false;
    if (const json* fallback = member(*model, "byte_fallback"); fallback && fallback->is_boolean() && fallback->get<bool>())
      return true;
    return has_type(pre, "Metaspace", "pretokenizers") || has_type(dec, "Metaspace", "decoders") ||
           has_type(dec, "ByteFallback", "decoders") || normalizer_marks_spaces(norm);
  } catch (const std::exception&) {
    return false;
  }
}

std::unique_ptr<Tokenizer> make_sentencepiece_json_tokenizer(const nlohmann::json& tokenizer_json,
                                                             const std::string& path, const TokenizerConfig& config) {
  try {
    return std::make_unique<SentencePieceJsonTokenizer>(tokenizer_json, path, config);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed tokenizer.json: ") + e.what(), {.file = path});
  }
}

}  // namespace flint
