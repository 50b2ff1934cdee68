#include "server/openai_api.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace flint::server {

ApiError::ApiError(int status_, const std::string& message, std::string param_, std::string type_)
    : std::runtime_error(message), status(status_), param(std::move(param_)), type(std::move(type_)) {}

ojson error_body(const std::string& message, const std::string& type, const std::string& param,
                 const std::string& code) {
  ojson e = ojson::object();
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? ojson(nullptr) : ojson(param);
  e["code"] = code.empty() ? ojson(nullptr) : ojson(code);
  return ojson{{"error", e}};
}

std::string to_json_text(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string_view finish_reason_text(FinishReason r) { return finish_reason_name(r); }

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

const char* type_name(const ojson& j) {
  switch (j.type()) {
    case ojson::value_t::null: return "null";
    case ojson::value_t::boolean: return "a boolean";
    case ojson::value_t::string: return "a string";
    case ojson::value_t::array: return "an array";
    case ojson::value_t::object: return "an object";
    case ojson::value_t::number_float: return "a float";
    default: return "an integer";
  }
}

// nlohmann's parser is iterative, but a value nested thousands deep would
// still make every later recursive walk (dump, templates) a stack risk.
constexpr int kMaxDepth = 64;

void check_depth(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (ch == '\\')
        escaped = true;
      else if (ch == '"')
        in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > kMaxDepth) throw ApiError(400, fmt::format("the JSON body nests deeper than {} levels", kMaxDepth));
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
}

ojson parse_body(std::string_view body) {
  check_depth(body);
  ojson j;
  try {
    j = ojson::parse(body.begin(), body.end());
  } catch (const ojson::exception& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, fmt::format("the request body must be a JSON object, got {}", type_name(j)));
  return j;
}

// Typed, range-checked access to the fields of a request object. A field
// that is absent or null reads as "not given".
class Fields {
 public:
  explicit Fields(const ojson& o) : o_(o) {}

  const ojson* get(const std::string& name) const {
    auto it = o_.find(name);
    return it == o_.end() || it->is_null() ? nullptr : &*it;
  }

  std::optional<bool> boolean(const std::string& name) const {
    const ojson* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) bad(name, fmt::format("'{}' must be a boolean, got {}", name, type_name(*v)));
    return v->get<bool>();
  }

  std::optional<int64_t> integer(const std::string& name, int64_t lo, int64_t hi) const {
    const ojson* v = get(name);
    if (!v) return std::nullopt;
    return as_integer(*v, name, lo, hi);
  }

  std::optional<double> number(const std::string& name, double lo, double hi) const {
    const ojson* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad(name, fmt::format("'{}' must be a number, got {}", name, type_name(*v)));
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi)) bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
    return x;
  }

  std::optional<std::string> string(const std::string& name) const {
    const ojson* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_string()) bad(name, fmt::format("'{}' must be a string, got {}", name, type_name(*v)));
    return v->get<std::string>();
  }

  static int64_t as_integer(const ojson& v, const std::string& name, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) bad(name, fmt::format("'{}' must be an integer, got {}", name, type_name(v)));
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(name, fmt::format("'{}' is out of range [{}, {}]", name, lo, hi));
    const auto x = v.get<int64_t>();
    if (x < lo || x > hi) {
      if (hi == std::numeric_limits<int32_t>::max())
        bad(name, fmt::format("'{}' must be at least {}, got {}", name, lo, x));
      bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
    }
    return x;
  }

 private:
  const ojson& o_;
};

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int32_t kMaxLogprobs = 20;
constexpr int32_t kMaxN = 128;
constexpr size_t kMaxStops = 64;

void check_model(const Fields& f, const ModelInfo& model) {
  if (auto name = f.string("model"); name && *name != model.name)
    bad("model", fmt::format("the model '{}' does not exist; this server serves '{}'", *name, model.name));
}

// The fields both endpoints share. max_tokens is read by the caller.
void parse_common(const Fields& f, CommonRequest& r) {
  SamplingParams& p = r.sampling;
  if (auto v = f.number("temperature", 0, 1e6)) p.temperature = static_cast<float>(*v);
  if (auto v = f.number("top_p", 0, 1)) p.top_p = static_cast<float>(*v);
  if (auto v = f.integer("top_k", -1, kInt32Max)) p.top_k = static_cast<int32_t>(*v);
  if (auto v = f.number("min_p", 0, 1)) p.min_p = static_cast<float>(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) p.presence_penalty = static_cast<float>(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) p.frequency_penalty = static_cast<float>(*v);
  if (auto v = f.number("repetition_penalty", 0, 1e6)) {
    if (*v <= 0) bad("repetition_penalty", fmt::format("'repetition_penalty' must be > 0, got {}", *v));
    p.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = f.integer("n", 1, kMaxN)) r.n = static_cast<int32_t>(*v);
  if (const ojson* seed = f.get("seed")) {
    if (!seed->is_number_integer()) bad("seed", fmt::format("'seed' must be an integer, got {}", type_name(*seed)));
    p.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (const ojson* stop = f.get("stop")) {
    if (stop->is_string()) {
      p.stop = {stop->get<std::string>()};
    } else if (stop->is_array()) {
      if (stop->size() > kMaxStops) bad("stop", fmt::format("at most {} stop strings", kMaxStops));
      for (const ojson& s : *stop) {
        if (!s.is_string())
          bad("stop", fmt::format("'stop' must be a string or a list of strings; found {}", type_name(s)));
        p.stop.push_back(s.get<std::string>());
      }
    } else {
      bad("stop", fmt::format("'stop' must be a string or a list of strings, got {}", type_name(*stop)));
    }
    for (const std::string& s : p.stop)
      if (s.empty()) bad("stop", "stop strings must not be empty");
  }
  if (const ojson* ids = f.get("stop_token_ids")) {
    if (!ids->is_array()) bad("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    for (const ojson& id : *ids)
      p.stop_token_ids.push_back(static_cast<int32_t>(Fields::as_integer(id, "stop_token_ids", 0, kInt32Max)));
  }
  if (auto v = f.boolean("ignore_eos")) p.ignore_eos = *v;
  if (auto v = f.boolean("stream")) r.stream = *v;
  if (const ojson* so = f.get("stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (auto v = Fields(*so).boolean("include_usage")) r.include_usage = *v;
  }
  if (const ojson* bias = f.get("logit_bias"); bias && !(bias->is_object() && bias->empty()))
    bad("logit_bias", "'logit_bias' is not supported");
}

void check_prompt_fits(size_t len, const ModelInfo& model, const char* param) {
  if (static_cast<int64_t>(len) >= model.max_model_len)
    bad(param, fmt::format("this model's maximum context length is {} tokens, and the prompt has {} tokens, which "
                           "leaves no room to generate",
                           model.max_model_len, len));
}

std::vector<TokenId> token_prompt(const ojson& ids, const ModelInfo& model) {
  std::vector<TokenId> out;
  out.reserve(ids.size());
  for (const ojson& id : ids) {
    if (!id.is_number_integer()) bad("prompt", fmt::format("token ids must be integers, found {}", type_name(id)));
    const int64_t v = id.is_number_unsigned() && id.get<uint64_t>() > static_cast<uint64_t>(kInt32Max)
                          ? kInt32Max
                          : id.get<int64_t>();
    if (v < 0 || v >= model.vocab_size)
      bad("prompt", fmt::format("token id {} is outside the vocabulary [0, {})", v, model.vocab_size));
    out.push_back(static_cast<TokenId>(v));
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------ chat

ChatPrompter::ChatPrompter(const std::string& tokenizer_dir, const Tokenizer& tokenizer)
    : format_(ChatFormat::load(tokenizer_dir, tokenizer)) {}

std::string ChatPrompter::render(const ojson& messages, const ChatRenderOptions& options) const {
  try {
    return format_.render(messages, options);
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("the chat template rejected the messages: {}", e.message()), "messages");
  }
}

namespace {

// Checks the messages and turns content part lists into plain strings (the
// text parts joined by newlines), which every Llama template expects.
ojson normalize_messages(const ojson& messages) {
  if (!messages.is_array()) bad("messages", fmt::format("'messages' must be a list, got {}", type_name(messages)));
  if (messages.empty()) bad("messages", "'messages' must not be empty");
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(where, fmt::format("each message must be an object, got {}", type_name(m)));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string() || role->get<std::string>().empty())
      bad(where + ".role", "each message needs a 'role' string");
    ojson copy = m;
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      if (!m.contains("tool_calls")) bad(where + ".content", "the message has no 'content'");
    } else if (content->is_array()) {
      std::string text;
      for (size_t k = 0; k < content->size(); ++k) {
        const ojson& part = (*content)[k];
        const std::string pwhere = fmt::format("{}.content[{}]", where, k);
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
          bad(pwhere, "each content part must be an object with a 'type'");
        if (part["type"] != "text")
          bad(pwhere,
              fmt::format("content parts of type '{}' are not supported (text only)", part["type"].get<std::string>()));
        if (!part.contains("text") || !part["text"].is_string())
          bad(pwhere + ".text", "a text part needs a 'text' string");
        if (!text.empty()) text += "\n";
        text += part["text"].get<std::string>();
      }
      copy["content"] = text;
    } else if (!content->is_string()) {
      bad(where + ".content",
          fmt::format("'content' must be a string or a list of parts, got {}", type_name(*content)));
    }
    out.push_back(std::move(copy));
  }
  return out;
}

int32_t read_max_tokens(const Fields& f, const char* name) {
  auto v = f.integer(name, 1, kInt32Max);
  return v ? static_cast<int32_t>(*v) : 0;
}

}  // namespace

// ------------------------------------------------------------------ requests

CompletionRequest parse_completion_request(std::string_view body, const ModelInfo& model, const Tokenizer& tokenizer) {
  const ojson j = parse_body(body);
  const Fields f(j);
  check_model(f, model);
  CompletionRequest r;
  parse_common(f, r);
  r.sampling.max_tokens = 16;  // OpenAI's default for completions
  if (int32_t m = read_max_tokens(f, "max_tokens")) r.sampling.max_tokens = m;
  if (auto v = f.boolean("echo")) r.echo = *v;
  if (auto v = f.integer("logprobs", 0, kMaxLogprobs)) {
    r.logprobs = true;
    r.sampling.logprobs = static_cast<int32_t>(*v);
  }
  if (auto v = f.integer("best_of", 1, kMaxN); v && *v != r.n)
    bad("best_of", "'best_of' is not supported (only best_of = n)");
  if (auto v = f.string("suffix"); v && !v->empty()) bad("suffix", "'suffix' is not supported");

  const ojson* prompt = f.get("prompt");
  if (!prompt) bad("prompt", "'prompt' is required");
  const EncodeOptions encode{.add_special = true, .parse_special = true};
  auto add_text = [&](const std::string& text) {
    r.prompts.push_back(tokenizer.encode(text, encode));
    r.prompt_texts.push_back(text);
  };
  auto add_ids = [&](const ojson& ids) {
    r.prompts.push_back(token_prompt(ids, model));
    r.prompt_texts.push_back(tokenizer.decode(r.prompts.back()));
  };
  if (prompt->is_string()) {
    add_text(prompt->get<std::string>());
  } else if (prompt->is_array() && !prompt->empty()) {
    const ojson& first = prompt->front();
    for (const ojson& item : *prompt) {
      if (first.is_number() && item.is_number()) continue;
      if (first.is_string() && item.is_string()) continue;
      if (first.is_array() && item.is_array()) continue;
      bad("prompt", "'prompt' must be a string, a list of token ids, a list of strings or a list of token id lists");
    }
    if (first.is_number()) {
      add_ids(*prompt);
    } else {
      if (prompt->size() * static_cast<size_t>(r.n) > static_cast<size_t>(kMaxN))
        bad("prompt", fmt::format("at most {} choices (prompts x n) per request", kMaxN));
      for (const ojson& item : *prompt) {
        if (item.is_string())
          add_text(item.get<std::string>());
        else
          add_ids(item);
      }
    }
  } else {
    bad("prompt", fmt::format("'prompt' must be a non-empty string or list, got {}",
                              prompt->is_array() ? "an empty list" : type_name(*prompt)));
  }
  for (const auto& p : r.prompts) {
    if (p.empty()) bad("prompt", "the prompt is empty");
    check_prompt_fits(p.size(), model, "prompt");
  }
  return r;
}

ChatRequest parse_chat_request(std::string_view body, const ModelInfo& model, const Tokenizer& tokenizer,
                               const ChatPrompter& prompter) {
  const ojson j = parse_body(body);
  const Fields f(j);
  check_model(f, model);
  ChatRequest r;
  parse_common(f, r);
  int32_t max_tokens = read_max_tokens(f, "max_tokens");
  if (int32_t m = read_max_tokens(f, "max_completion_tokens")) max_tokens = m;
  if (auto v = f.boolean("logprobs")) r.logprobs = *v;
  if (auto v = f.integer("top_logprobs", 0, kMaxLogprobs)) {
    if (!r.logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs' to be true");
    r.sampling.logprobs = static_cast<int32_t>(*v);
  }
  if (const ojson* rf = f.get("response_format")) {
    if (!rf->is_object() || !rf->contains("type") || (*rf)["type"] != "text")
      bad("response_format", "only the 'text' response format is supported");
  }
  ojson tools = nullptr;
  if (const ojson* t = f.get("tools")) {
    if (!t->is_array()) bad("tools", "'tools' must be a list");
    tools = *t;
  }
  // vLLM's defaults and its check (with its message): a new assistant turn
  // unless the client continues the final message (an assistant prefill),
  // never both. vLLM also fails a request that leaves add_generation_prompt
  // at its default true (transformers refuses the pair), so this does too.
  ChatRenderOptions options;
  options.tools = tools;
  if (auto v = f.boolean("add_generation_prompt")) options.add_generation_prompt = *v;
  if (auto v = f.boolean("continue_final_message")) options.continue_final_message = *v;
  if (options.continue_final_message && options.add_generation_prompt)
    bad("continue_final_message",
        "Cannot set both `continue_final_message` and `add_generation_prompt` to True. (add_generation_prompt "
        "defaults to true: set it to false to continue the final message)");

  const ojson* messages = f.get("messages");
  if (!messages) bad("messages", "'messages' is required");
  const std::string text = prompter.render(normalize_messages(*messages), options);
  // The template wrote BOS and any special tokens itself.
  r.prompt = tokenizer.encode(text, {.add_special = false, .parse_special = true});
  if (r.prompt.empty()) bad("messages", "the rendered prompt is empty");
  check_prompt_fits(r.prompt.size(), model, "messages");
  const int64_t room = model.max_model_len - static_cast<int64_t>(r.prompt.size());
  r.sampling.max_tokens = max_tokens > 0 ? max_tokens : static_cast<int32_t>(std::min<int64_t>(room, kInt32Max));
  return r;
}

// ------------------------------------------------------------------ logprobs

std::string token_text(const Tokenizer& tokenizer, TokenId id) {
  try {
    return sanitize_utf8(tokenizer.token_bytes(id));
  } catch (const Error&) {
    return "";  // an id the tokenizer does not know (a model vocabulary larger than the tokenizer's)
  }
}

ojson completion_logprobs(const Tokenizer& tokenizer, std::span<const SampledToken> tokens, size_t offset) {
  ojson texts = ojson::array(), lps = ojson::array(), tops = ojson::array(), offsets = ojson::array();
  for (const SampledToken& t : tokens) {
    const std::string text = token_text(tokenizer, t.id);
    texts.push_back(text);
    lps.push_back(t.logprob);
    ojson top = ojson::object();
    for (const auto& [id, lp] : t.top_logprobs) top[token_text(tokenizer, id)] = lp;
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += text.size();
  }
  return ojson{{"tokens", texts}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

ojson prompt_logprobs(const Tokenizer& tokenizer, TokenId first, std::span<const SampledToken> scored, size_t& end) {
  const std::string first_text = token_text(tokenizer, first);
  ojson out = completion_logprobs(tokenizer, scored, first_text.size());
  out["tokens"].insert(out["tokens"].begin(), first_text);
  out["token_logprobs"].insert(out["token_logprobs"].begin(), nullptr);
  out["top_logprobs"].insert(out["top_logprobs"].begin(), nullptr);
  out["text_offset"].insert(out["text_offset"].begin(), 0);
  end = out["text_offset"].back().get<size_t>() + out["tokens"].back().get<std::string>().size();
  return out;
}

void append_logprobs(ojson& a, const ojson& b) {
  for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
    for (const ojson& v : b[key]) a[key].push_back(v);
}

namespace {
ojson token_entry(const Tokenizer& tokenizer, TokenId id, float logprob) {
  const std::string text = token_text(tokenizer, id);
  ojson bytes = ojson::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return ojson{{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
}
}  // namespace

ojson chat_logprobs_content(const Tokenizer& tokenizer, std::span<const SampledToken> tokens, int32_t top) {
  ojson content = ojson::array();
  for (const SampledToken& t : tokens) {
    ojson e = token_entry(tokenizer, t.id, t.logprob);
    ojson alts = ojson::array();
    for (size_t k = 0; k < t.top_logprobs.size() && static_cast<int32_t>(k) < top; ++k)
      alts.push_back(token_entry(tokenizer, t.top_logprobs[k].first, t.top_logprobs[k].second));
    e["top_logprobs"] = std::move(alts);
    content.push_back(std::move(e));
  }
  return content;
}

}  // namespace flint::server
