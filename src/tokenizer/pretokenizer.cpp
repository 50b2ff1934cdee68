#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace flint {
namespace {

// Unicode White_Space, the \s of Oniguruma (HF tokenizers) and of the Rust
// regex crate (tiktoken). PCRE2's own \s also takes U+180E, which stopped being
// White_Space in Unicode 6.3.
constexpr std::string_view kWhiteSpaceRanges =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites \s and \S outside/inside character classes to kWhiteSpaceRanges.
std::string widen_whitespace(std::string_view p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      ++i;
      if (n == 's') {
        out += in_class ? std::string(kWhiteSpaceRanges) : "[" + std::string(kWhiteSpaceRanges) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceRanges) + "]";
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t end = p.find(":]", i + 2);  // POSIX class [:alpha:]
      if (end != std::string_view::npos) {
        out += p.substr(i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// Per-thread match resources: pcre2 match data is not shareable, and a JIT
// stack that grows to 64 MiB lets the Llama 3 regex run over megabyte-long
// pre-tokens (a run of spaces, a word without spaces).
struct ThreadMatchState {
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  ThreadMatchState() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
    if (context) {
      // Only the interpreter (no JIT) counts these; never let it give up early.
      pcre2_set_match_limit(context, 0xFFFFFFFFu);
      pcre2_set_depth_limit(context, 0xFFFFFFFFu);
    }
  }
  ~ThreadMatchState() {
    if (stack) pcre2_jit_stack_free(stack);
    if (context) pcre2_match_context_free(context);
  }
};

ThreadMatchState& thread_match_state() {
  thread_local ThreadMatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

RegexSplitter::RegexSplitter(std::string_view pattern, const ErrorContext& where)
    : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  const std::string widened = widen_whitespace(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(widened.data()), widened.size(),
                                  PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!compiled_->code)
    fail(where, "cannot compile split regex /{}/: {} (at offset {})", pattern, pcre2_message(error), offset);
  // Without JIT (unsupported CPU) matching still works, only slower.
  pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
  if (text.empty()) return;
  ThreadMatchState& state = thread_match_state();
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  if (!data) fail("out of memory creating regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t emitted = 0;  // end of the last piece given to emit
  size_t start = 0;
  try {
    while (start <= text.size()) {
      const int rc = pcre2_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data,
                                 state.context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0)
        fail("split regex /{}/ failed on a {}-byte input at byte {}: {}", pattern_, text.size(), start,
             pcre2_message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
      const size_t m_begin = ov[0], m_end = ov[1];
      if (m_begin > emitted) emit(text.substr(emitted, m_begin - emitted));
      if (m_end > m_begin) {
        emit(text.substr(m_begin, m_end - m_begin));
        emitted = m_end;
        start = m_end;
      } else {
        // An empty match: step over one whole UTF-8 character so the loop ends.
        if (m_begin >= text.size()) break;
        size_t next = m_begin + 1;
        while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
        start = next;
      }
    }
  } catch (...) {
    pcre2_match_data_free(data);
    throw;
  }
  pcre2_match_data_free(data);
  if (emitted < text.size()) emit(text.substr(emitted));
}

void PreTokenizer::add_split(std::string_view pattern, const ErrorContext& where) {
  steps_.push_back(std::make_unique<RegexSplitter>(pattern, where));
}

void PreTokenizer::split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
  if (steps_.empty()) {
    if (!text.empty()) emit(text);
    return;
  }
  split_from(0, text, emit);
}

void PreTokenizer::split_from(size_t step, std::string_view text,
                              const std::function<void(std::string_view)>& emit) const {
  if (step + 1 == steps_.size()) {
    steps_[step]->split(text, emit);
    return;
  }
  steps_[step]->split(text, [&](std::string_view piece) { split_from(step + 1, piece, emit); });
}

std::string regex_quote(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view(R"(\^$.|?*+()[]{}-/)").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace flint
