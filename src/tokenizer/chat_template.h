// tokenizer/chat_template.h — chat messages -> prompt text, byte-identical to
// transformers' tokenizer.apply_chat_template(..., tokenize=False).
//
// Contract:
// - A ChatTemplate is a checkpoint's Jinja chat template (or a built-in one),
//   parsed once; render() is const and thread-safe.
// - render() gives the template exactly the variables transformers gives it:
//   messages, tools (None when absent), documents (None),
//   add_generation_prompt, bos_token, eos_token, date_string when set, and
//   every key of options.extra (builtin_tools, tools_in_user_message, ...);
//   plus transformers' globals raise_exception(msg) and strftime_now(fmt).
// - JSON is taken as nlohmann::ordered_json because dict order shows in the
//   output (tojson keeps insertion order, as Python does); parse requests
//   with ordered_json to keep the client's key order.
// - continue_final_message works as transformers' render_jinja_template
//   does: "CONTINUE_FINAL_MESSAGE_TAG " is appended to the final message's
//   content (the last text block of a block list) before rendering, and the
//   output is cut where the tag lands — right there when the template kept
//   the space after it, else with the whitespace before it stripped too.
//   Failures (add_generation_prompt also set, the message or the tag missing
//   from the output) throw flint::Error with transformers' ValueError text
//   as message().
// - raise_exception("msg") in a template throws flint::Error whose message()
//   is exactly "msg". Every other failure — a syntax error, an unsupported
//   Jinja construct, a type error while rendering — throws flint::Error
//   naming the template's file, line and column.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace flint {

namespace jinja {
class Template;
}

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools = nullptr;  // a list of tool schemas, or null
  std::optional<std::string> date_string;  // Llama 3.x "Today Date"; unset: the template's default
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // further template variables
  // transformers' continue_final_message: the rendering is cut right after the
  // final message's content (its end-of-turn text, e.g. " </s>" or
  // "<|eot_id|>", dropped), so generation continues that message — an
  // assistant prefill. Needs add_generation_prompt = false, as in transformers.
  bool continue_final_message = false;
};

class ChatTemplate {
 public:
  // origin names the template's file in error messages.
  static ChatTemplate parse(std::string source, std::string origin);

  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options,
                     const std::string& bos_token, const std::string& eos_token) const;

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }

 private:
  std::string source_;
  std::string origin_;
  std::shared_ptr<const jinja::Template> template_;
};

// The chat template of a tokenizer directory, as transformers finds it:
// chat_template.jinja, else chat_template.json's "chat_template", else
// tokenizer_config.json's "chat_template" (a string, or a list of
// {"name", "template"} of which "default" is used). nullopt when there is
// none; flint::Error when a file is malformed or has several templates but
// no "default".
std::optional<ChatTemplate> load_chat_template(const std::string& tokenizer_dir);

// Formats for checkpoints that ship no template: Llama 2 chat ([INST],
// <<SYS>>; same output as Meta's Llama-2-chat template) and Llama 3 Instruct
// (header/eot tokens; same output as Meta's Llama-3-Instruct template).
enum class BuiltinChatFormat { llama2, llama3 };
ChatTemplate builtin_chat_template(BuiltinChatFormat format);

// The chat format a model is prompted with: the checkpoint's template, or
// else the built-in one matching the tokenizer (SentencePiece -> Llama 2, else
// Llama 3), with BOS/EOS text from tokenizer_config.json or else the tokenizer
// itself. An empty tokenizer_dir (a dummy model's built-in tokenizer) takes the
// built-in format.
struct ChatFormat {
  ChatTemplate chat;
  std::string bos_token;
  std::string eos_token;

  static ChatFormat load(const std::string& tokenizer_dir, const Tokenizer& tokenizer);
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options) const {
    return chat.render(messages, options, bos_token, eos_token);
  }
};

// One system (omitted when empty) + one user message in the model's
// ChatFormat, add_generation_prompt = true.
std::string render_chat_prompt(const std::string& tokenizer_dir, const Tokenizer& tokenizer,
                               const std::string& system, const std::string& user);

}  // namespace flint
