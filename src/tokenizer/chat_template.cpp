#include "tokenizer/chat_template.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/jinja_template.h"

namespace flint {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail({.file = path.string()}, "cannot open file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

ojson read_json(const fs::path& path) {
  try {
    return ojson::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    fail({.file = path.string()}, "invalid JSON: {}", e.what());
  }
}

// strftime_now(format): datetime.now().strftime(format), local time as Python uses.
jinja::Value strftime_now(const jinja::CallArgs& args) {
  if (args.positional.size() != 1 || !args.positional[0].is_string())
    throw jinja::ValueError("strftime_now() takes one format string");
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[512];
  size_t n = std::strftime(buffer, sizeof buffer, args.positional[0].as_string().c_str(), &local);
  if (n == 0 && !args.positional[0].as_string().empty()) throw jinja::ValueError("strftime_now(): bad or too long format");
  return jinja::Value(std::string(buffer, n));
}

// A special token as tokenizer_config.json writes it: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_text(const ojson& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// Meta's formats, written to produce the same bytes as the official
// Llama-2-chat and Llama-3-Instruct templates for the conversations those accept.
constexpr const char* kLlama2Template = R"jinja(
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] -%}
    {%- set turns = messages[1:] -%}
{%- else -%}
    {%- set turns = messages -%}
{%- endif -%}
{%- for m in turns -%}
    {%- if (m['role'] == 'user') != loop.index0 is even -%}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
    {%- endif -%}
    {%- set text = m['content'] -%}
    {%- if loop.first and system is defined -%}
        {%- set text = '<<SYS>>\n' ~ system ~ '\n<</SYS>>\n\n' ~ text -%}
    {%- endif -%}
    {%- if m['role'] == 'user' -%}
        {{- bos_token ~ '[INST] ' ~ text | trim ~ ' [/INST]' -}}
    {%- elif m['role'] == 'assistant' -%}
        {{- ' ' ~ text | trim ~ ' ' ~ eos_token -}}
    {%- endif -%}
{%- endfor -%}
)jinja";

constexpr const char* kLlama3Template = R"jinja(
{%- for m in messages -%}
    {%- if loop.first -%}
        {{- bos_token -}}
    {%- endif -%}
    {{- '<|start_header_id|>' ~ m['role'] ~ '<|end_header_id|>\n\n' ~ m['content'] | trim ~ '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%}
)jinja";

}  // namespace

ChatTemplate ChatTemplate::parse(std::string source, std::string origin) {
  ChatTemplate t;
  t.template_ = std::make_shared<const jinja::Template>(jinja::Template::parse(source, origin));
  t.source_ = std::move(source);
  t.origin_ = std::move(origin);
  return t;
}

namespace {

// transformers' render_jinja_template appends this to the final message's text
// before rendering, finds it in the output and cuts there.
constexpr std::string_view kContinueTag = "CONTINUE_FINAL_MESSAGE_TAG ";

// The final message with the tag appended to its content (or, for a list of
// content blocks, to the last block that has "text"); returns that text as it
// was before the tag.
std::string tag_final_message(nlohmann::ordered_json& messages, const std::string& source, const ErrorContext& where) {
  if (messages.empty()) throw Error("continue_final_message is set but there are no messages", where);
  auto& last = messages.back();
  if (!last.is_object() || !last.contains("content") || last["content"].is_null())
    throw Error("continue_final_message is set but the final message has no \"content\" to continue!", where);
  if (source.find("content") == std::string::npos)
    throw Error(
        "continue_final_message is set to \"content\" but this is not an accepted field in the chat_template", where);
  auto& content = last["content"];
  if (content.is_array()) {
    for (auto block = content.rbegin(); block != content.rend(); ++block) {
      if (!block->is_object() || !block->contains("text")) continue;
      auto& text = (*block)["text"];
      if (!text.is_string()) break;
      std::string original = text.get<std::string>();
      text = original + std::string(kContinueTag);
      return original;
    }
    throw Error("continue_final_message is set but we could not find any text to continue in the final message!",
                where);
  }
  if (!content.is_string())
    throw Error("continue_final_message is set but the final message's content is not text", where);
  std::string original = content.get<std::string>();
  content = original + std::string(kContinueTag);
  return original;
}

// Cut where the tag was printed; when the template trimmed the space after
// it, also drop the whitespace before it (the message's own trailing space).
std::string cut_at_tag(std::string rendered, const std::string& final_message, const ErrorContext& where) {
  const std::string stripped = jinja::python_strip(final_message, std::nullopt, true, true);
  const std::string_view tag = kContinueTag.substr(0, kContinueTag.size() - 1);
  const size_t at = rendered.rfind(tag);
  if (rendered.find(stripped) == std::string::npos || at == std::string::npos)
    throw Error(
        "continue_final_message is set but the final message does not appear in the chat after applying the chat "
        "template! This can happen if the chat template deletes portions of the final message. Please verify the "
        "chat template and final message in your chat to ensure they are compatible.Final message to continue: " +
            stripped + "\nRendered chat:\n" + rendered,
        where);
  const bool spacing_kept = rendered.compare(at, kContinueTag.size(), kContinueTag) == 0;
  rendered.resize(at);
  return spacing_kept ? rendered : jinja::python_strip(rendered, std::nullopt, false, true);
}

}  // namespace

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options,
                                 const std::string& bos_token, const std::string& eos_token) const {
  const ErrorContext where{.file = origin_, .field = "chat_template"};
  if (!messages.is_array()) fail(where, "messages must be a JSON array, got {}", messages.type_name());
  if (options.continue_final_message && options.add_generation_prompt)
    throw Error(
        "continue_final_message and add_generation_prompt are not compatible. Use continue_final_message when you "
        "want the model to continue the final message, and add_generation_prompt when you want to add a header "
        "that will prompt it to start a new assistant message instead.",
        where);
  if (!options.extra.is_object()) fail(where, "extra template variables must be a JSON object");
  jinja::Object context;
  std::string origin = origin_;
  context.set("raise_exception", jinja::Value::function("raise_exception", [origin](const jinja::CallArgs& a) -> jinja::Value {
    std::string message = a.positional.empty() ? std::string() : jinja::to_str(a.positional[0]);
    throw Error(message, {.file = origin, .field = "chat_template"});
  }));
  context.set("strftime_now", jinja::Value::function("strftime_now", strftime_now));
  nlohmann::ordered_json tagged;
  std::string final_message;
  if (options.continue_final_message) {
    tagged = messages;
    final_message = tag_final_message(tagged, source_, where);
  }
  try {
    context.set("messages", jinja::from_json(options.continue_final_message ? tagged : messages));
    context.set("tools", jinja::from_json(options.tools));
    context.set("documents", jinja::Value::none());
    context.set("add_generation_prompt", jinja::Value(options.add_generation_prompt));
    context.set("bos_token", jinja::Value(bos_token));
    context.set("eos_token", jinja::Value(eos_token));
    if (options.date_string) context.set("date_string", jinja::Value(*options.date_string));
    for (const auto& [key, value] : options.extra.items()) context.set(key, jinja::from_json(value));
  } catch (const jinja::ValueError& e) {
    fail(where, "{}", e.what());
  }
  std::string rendered = template_->render(context);
  if (options.continue_final_message) return cut_at_tag(std::move(rendered), final_message, where);
  return rendered;
}

std::optional<ChatTemplate> load_chat_template(const std::string& tokenizer_dir) {
  const fs::path dir(tokenizer_dir);
  if (fs::path jinja_file = dir / "chat_template.jinja"; fs::exists(jinja_file))
    return ChatTemplate::parse(read_text(jinja_file), jinja_file.string());
  for (const char* name : {"chat_template.json", "tokenizer_config.json"}) {
    fs::path file = dir / name;
    if (!fs::exists(file)) continue;
    ojson config = read_json(file);
    if (!config.is_object()) fail({.file = file.string()}, "expected a JSON object");
    auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) continue;
    if (it->is_string()) return ChatTemplate::parse(it->get<std::string>(), file.string());
    if (it->is_array()) {
      for (const auto& entry : *it) {
        if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
            !entry["name"].is_string() || !entry["template"].is_string())
          fail({.file = file.string(), .field = "chat_template"}, "expected a list of {{\"name\", \"template\"}} objects");
        if (entry["name"] == "default") return ChatTemplate::parse(entry["template"].get<std::string>(), file.string());
      }
      fail({.file = file.string(), .field = "chat_template"},
           "several chat templates and none is named \"default\"");
    }
    fail({.file = file.string(), .field = "chat_template"}, "expected a string or a list, got {}", it->type_name());
  }
  return std::nullopt;
}

ChatTemplate builtin_chat_template(BuiltinChatFormat format) {
  if (format == BuiltinChatFormat::llama2) return ChatTemplate::parse(kLlama2Template, "<built-in llama2 chat template>");
  return ChatTemplate::parse(kLlama3Template, "<built-in llama3 chat template>");
}

ChatFormat ChatFormat::load(const std::string& tokenizer_dir, const Tokenizer& tokenizer) {
  std::optional<ChatTemplate> chat;
  if (!tokenizer_dir.empty()) chat = load_chat_template(tokenizer_dir);
  if (!chat)
    chat = builtin_chat_template(tokenizer.kind() == "sentencepiece" ? BuiltinChatFormat::llama2
                                                                     : BuiltinChatFormat::llama3);
  ojson config = ojson::object();
  if (fs::path file = fs::path(tokenizer_dir) / "tokenizer_config.json"; !tokenizer_dir.empty() && fs::exists(file))
    config = read_json(file);
  ChatFormat format{std::move(*chat), "", ""};
  if (auto text = config.is_object() ? token_text(config, "bos_token") : std::nullopt)
    format.bos_token = *text;
  else if (auto id = tokenizer.bos_id())
    format.bos_token = tokenizer.token_bytes(*id);
  if (auto text = config.is_object() ? token_text(config, "eos_token") : std::nullopt)
    format.eos_token = *text;
  else if (auto ids = tokenizer.eos_ids(); !ids.empty())
    format.eos_token = tokenizer.token_bytes(ids.front());
  return format;
}

std::string render_chat_prompt(const std::string& tokenizer_dir, const Tokenizer& tokenizer,
                               const std::string& system, const std::string& user) {
  ojson messages = ojson::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  return ChatFormat::load(tokenizer_dir, tokenizer).render(messages, ChatRenderOptions{});
}

}  // namespace flint
