// Meta's tiktoken tokenizer.model of Llama 3: one "<base64 token> <rank>" line
// per token, ranks = ids = merge priorities; special tokens follow the ranks.
#include <charconv>

#include "core/mapped_file.h"
#include "tokenizer/byte_level_bpe.h"

namespace flint {
namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict RFC 4648 base64 (padding required, no line breaks); nullopt if malformed.
std::optional<std::string> decode_base64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  while (padding < 2 && s[s.size() - 1 - padding] == '=') ++padding;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < s.size() - padding; ++i) {
    const int v = base64_value(s[i]);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  // Left-over bits must be zero, or two spellings would decode the same.
  if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

bool looks_like_tiktoken(std::string_view contents) {
  const size_t end = contents.find('\n');
  const std::string_view line = contents.substr(0, end == std::string_view::npos ? contents.size() : end);
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size()) return false;
  for (size_t i = 0; i < space; ++i)
    if (base64_value(line[i]) < 0 && line[i] != '=') return false;
  for (size_t i = space + 1; i < line.size(); ++i)
    if ((line[i] < '0' || line[i] > '9') && !(line[i] == '\r' && i + 1 == line.size())) return false;
  return true;
}

std::vector<AddedToken> llama3_special_tokens(TokenId first_id) {
  // Order and names of Meta's llama3 tokenizer.py (Llama 3.1 naming).
  std::vector<std::string> names = {"<|begin_of_text|>",     "<|end_of_text|>",        "<|reserved_special_token_0|>",
                                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
                                    "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
                                    "<|eom_id|>",            "<|eot_id|>",             "<|python_tag|>"};
  for (int i = 3; names.size() < 256; ++i) names.push_back(fmt::format("<|reserved_special_token_{}|>", i));
  std::vector<AddedToken> tokens;
  for (size_t i = 0; i < names.size(); ++i)
    tokens.push_back(AddedToken{.id = first_id + static_cast<TokenId>(i), .content = names[i], .special = true});
  return tokens;
}

std::unique_ptr<Tokenizer> make_tiktoken_tokenizer(const std::string& path, const TokenizerConfig& config) {
  const std::string contents = read_file(path);
  std::vector<std::string> by_rank;
  std::vector<bool> seen;
  size_t line_number = 0;
  for (size_t pos = 0; pos < contents.size();) {
    size_t end = contents.find('\n', pos);
    if (end == std::string::npos) end = contents.size();
    std::string_view line(contents.data() + pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const ErrorContext where{.file = path};
    const size_t space = line.find(' ');
    FLINT_CHECK(space != std::string_view::npos, where, "line {}: expected \"<base64 token> <rank>\"", line_number);
    const auto token = decode_base64(line.substr(0, space));
    FLINT_CHECK(token.has_value() && !token->empty(), where, "line {}: bad base64 token '{}'", line_number, line.substr(0, space));
    const std::string_view rank_text = line.substr(space + 1);
    uint32_t rank = 0;
    const auto [ptr, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    FLINT_CHECK(ec == std::errc() && ptr == rank_text.data() + rank_text.size() && rank < (1u << 30), where,
                "line {}: bad rank '{}'", line_number, rank_text);
    if (rank >= by_rank.size()) {
      by_rank.resize(rank + 1);
      seen.resize(rank + 1, false);
    }
    FLINT_CHECK(!seen[rank], where, "line {}: rank {} appears twice", line_number, rank);
    seen[rank] = true;
    by_rank[rank] = *token;
  }
  FLINT_CHECK(!by_rank.empty(), ErrorContext{.file = path}, "no tokens");
  for (size_t r = 0; r < seen.size(); ++r)
    FLINT_CHECK(seen[r], ErrorContext{.file = path}, "rank {} is missing (ranks must be 0..{})", r, seen.size() - 1);

  const auto first_special = static_cast<TokenId>(by_rank.size());
  ByteLevelBpeSpec spec{
      .origin = path,
      .kind = "tiktoken",
      .model = BpeModel::from_ranks(std::move(by_rank), {.file = path}),
  };
  spec.pretokenizer.add_split(kLlama3SplitPattern, {.file = path});
  // tokenizer_config.json beside it names the special tokens when it can;
  // otherwise they are Meta's Llama 3 ones.
  spec.added_tokens = config.added_tokens.empty() ? llama3_special_tokens(first_special) : config.added_tokens;
  if (const auto it = std::find_if(spec.added_tokens.begin(), spec.added_tokens.end(),
                                   [](const AddedToken& t) { return t.content == "<|begin_of_text|>"; });
      it != spec.added_tokens.end())
    spec.template_prefix = {it->id};
  return make_byte_level_bpe_tokenizer(std::move(spec), config);
}

}  // namespace flint
