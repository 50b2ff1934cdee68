#include "tokenizer/byte_level_bpe.h"

#include <algorithm>

#include "tokenizer/added_tokens.h"
#include "tokenizer/byte_level.h"

namespace flint {
namespace {

class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  ByteLevelBpeTokenizer(ByteLevelBpeSpec spec, const TokenizerConfig& config)
      : origin_(std::move(spec.origin)),
        kind_(std::move(spec.kind)),
        model_(std::move(spec.model)),
        pretokenizer_(std::move(spec.pretokenizer)),
        add_prefix_space_(spec.add_prefix_space),
        matcher_(spec.added_tokens),
        prefix_(std::move(spec.template_prefix)),
        suffix_(std::move(spec.template_suffix)) {
    vocab_size_ = model_.size();
    for (const AddedToken& t : spec.added_tokens) vocab_size_ = std::max(vocab_size_, t.id + 1);
    added_.assign(static_cast<size_t>(vocab_size_), -1);
    for (size_t i = 0; i < spec.added_tokens.size(); ++i) {
      const AddedToken& t = spec.added_tokens[i];
      FLINT_CHECK(t.id >= 0, ErrorContext{.file = origin_, .field = "added_tokens"}, "negative id {} for '{}'", t.id,
                  t.content);
      added_[static_cast<size_t>(t.id)] = static_cast<int32_t>(i);
      added_by_text_.emplace(t.content, t.id);
    }
    added_tokens_ = std::move(spec.added_tokens);
    resolve_special_ids(config);
  }

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options) const override {
    const std::string clean = sanitize_utf8(text);
    std::vector<TokenId> ids;
    ids.reserve(clean.size() / 3 + prefix_.size() + suffix_.size() + 1);
    if (options.add_special) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
    std::vector<AddedTokenMatcher::Segment> segments;
    matcher_.split(clean, options.parse_special, segments);
    for (const auto& segment : segments) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
      } else {
        encode_text(segment.text, ids);
      }
    }
    if (options.add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string token_bytes(TokenId id) const override {
    check(id);
    if (const AddedToken* t = added(id)) {
      // HF runs added tokens through the ByteLevel decoder as well; text
      // outside the byte alphabet passes unchanged.
      return byte_level_to_bytes(t->content).value_or(t->content);
    }
    return model_.bytes(id);
  }

  std::string token_piece(TokenId id) const override {
    check(id);
    if (const AddedToken* t = added(id)) return t->content;
    return bytes_to_byte_level(model_.bytes(id));
  }

  int32_t vocab_size() const override { return vocab_size_; }

  bool is_special(TokenId id) const override {
    const AddedToken* t = id >= 0 && id < vocab_size_ ? added(id) : nullptr;
    return t && t->special;
  }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    if (const auto it = added_by_text_.find(std::string(token)); it != added_by_text_.end()) return it->second;
    if (const auto bytes = byte_level_to_bytes(token)) return model_.find(*bytes);
    return std::nullopt;
  }

  std::optional<TokenId> bos_id() const override { return bos_; }
  std::vector<TokenId> eos_ids() const override { return eos_; }
  std::string kind() const override { return kind_; }

 private:
  void encode_text(std::string_view text, std::vector<TokenId>& ids) const {
    auto emit = [&](std::string_view piece) { model_.encode_piece(piece, ids); };
    if (add_prefix_space_ && !text.empty() && text.front() != ' ') {
      const std::string spaced = " " + std::string(text);
      pretokenizer_.split(spaced, emit);
    } else {
      pretokenizer_.split(text, emit);
    }
  }

  const AddedToken* added(TokenId id) const {
    const int32_t i = added_[static_cast<size_t>(id)];
    return i < 0 ? nullptr : &added_tokens_[static_cast<size_t>(i)];
  }

  void check(TokenId id) const {
    FLINT_CHECK(id >= 0 && id < vocab_size_, ErrorContext{.file = origin_}, "token id {} out of range [0, {})", id,
                vocab_size_);
    FLINT_CHECK(added(id) || model_.contains(id), ErrorContext{.file = origin_},
                "token id {} is not in the vocabulary", id);
  }

  std::optional<TokenId> id_of_config_token(const std::optional<std::string>& text, const char* field) const {
    if (!text) return std::nullopt;
    const auto id = token_to_id(*text);
    FLINT_CHECK(id.has_value(), ErrorContext{.file = config_path_, .field = field},
                "token '{}' is not in the vocabulary of {}", *text, origin_);
    return id;
  }

  void resolve_special_ids(const TokenizerConfig& config) {
    config_path_ = config.dir.empty() ? origin_ : config.dir + "/tokenizer_config.json";
    const auto config_bos = id_of_config_token(config.bos_token, "bos_token");
    const auto config_eos = id_of_config_token(config.eos_token, "eos_token");
    bos_ = config_bos;
    if (!bos_ && prefix_.size() == 1) bos_ = prefix_.front();
    if (!bos_) bos_ = token_to_id("<|begin_of_text|>");

    if (config.add_bos_token || config.add_eos_token) {
      prefix_.clear();
      suffix_.clear();
      if (config.add_bos_token.value_or(false)) {
        FLINT_CHECK(bos_.has_value(), ErrorContext{.file = config_path_, .field = "add_bos_token"},
                    "is true but there is no bos_token");
        prefix_.push_back(*bos_);
      }
      if (config.add_eos_token.value_or(false)) {
        FLINT_CHECK(config_eos.has_value(), ErrorContext{.file = config_path_, .field = "add_eos_token"},
                    "is true but there is no eos_token");
        suffix_.push_back(*config_eos);
      }
    }

    auto add_eos = [this](std::optional<TokenId> id) {
      if (id && std::find(eos_.begin(), eos_.end(), *id) == eos_.end()) eos_.push_back(*id);
    };
    add_eos(config_eos);
    for (const char* ender : {"<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"}) add_eos(token_to_id(ender));
  }

  std::string origin_;
  std::string config_path_;
  std::string kind_;
  BpeModel model_;
  PreTokenizer pretokenizer_;
  bool add_prefix_space_;
  AddedTokenMatcher matcher_;
  std::vector<AddedToken> added_tokens_;
  std::vector<int32_t> added_;  // id -> index into added_tokens_, -1 if none
  std::unordered_map<std::string, TokenId> added_by_text_;
  std::vector<TokenId> prefix_, suffix_;
  int32_t vocab_size_ = 0;
  std::optional<TokenId> bos_;
  std::vector<TokenId> eos_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_level_bpe_tokenizer(ByteLevelBpeSpec spec, const TokenizerConfig& config) {
  return std::make_unique<ByteLevelBpeTokenizer>(std::move(spec), config);
}

}  // namespace flint
