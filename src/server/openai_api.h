// server/openai_api.h — OpenAI request bodies to typed requests, and the JSON
// of responses, chunks and errors. Internal to server/.
//
// Contract: parse_*_request() accept what the OpenAI API (and vLLM's
// extensions: top_k, min_p, repetition_penalty, ignore_eos, stop_token_ids;
// for chat add_generation_prompt and continue_final_message) accepts, and
// throw ApiError naming the parameter for anything else: bad JSON, a wrong
// type, a value out of range, an unknown model, a prompt that does not fit
// the context. Unknown fields are ignored, as vLLM does.
#pragma once

#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine.h"
#include "tokenizer/chat_template.h"

namespace flint::server {

using ojson = nlohmann::ordered_json;

struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message, std::string param = "", std::string type = "invalid_request_error");
  int status;
  std::string param;  // empty: null
  std::string type;
};

// {"error": {"message", "type", "param", "code"}}; empty param/code give null.
ojson error_body(const std::string& message, const std::string& type, const std::string& param,
                 const std::string& code = "");
std::string to_json_text(const ojson& j);  // compact; invalid UTF-8 replaced

struct ModelInfo {
  std::string name;
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
};

// The model's chat template with the BOS/EOS text it expects.
class ChatPrompter {
 public:
  // tokenizer_dir empty, or without a template: the built-in format for the
  // tokenizer (SentencePiece: Llama 2; else Llama 3).
  ChatPrompter(const std::string& tokenizer_dir, const Tokenizer& tokenizer);
  // Throws ApiError (param "messages") for messages the template rejects,
  // including a final message that continue_final_message cannot continue.
  std::string render(const ojson& messages, const ChatRenderOptions& options) const;

 private:
  ChatFormat format_;
};

struct CommonRequest {
  SamplingParams sampling;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct CompletionRequest : CommonRequest {
  std::vector<std::vector<TokenId>> prompts;  // one or more (a batch); n choices each
  std::vector<std::string> prompt_texts;      // their text, for echo
  bool echo = false;
  bool logprobs = false;  // the "logprobs" field was given (sampling.logprobs: how many alternatives)
};

struct ChatRequest : CommonRequest {
  std::vector<TokenId> prompt;
  bool logprobs = false;
};

CompletionRequest parse_completion_request(std::string_view body, const ModelInfo& model, const Tokenizer& tokenizer);
ChatRequest parse_chat_request(std::string_view body, const ModelInfo& model, const Tokenizer& tokenizer,
                               const ChatPrompter& prompter);

// Text of one token for logprobs (its bytes, invalid UTF-8 replaced).
std::string token_text(const Tokenizer& tokenizer, TokenId id);
// Completions-style logprobs of `tokens`: {tokens, token_logprobs, top_logprobs,
// text_offset}; offsets count from `offset` (bytes of text before them).
ojson completion_logprobs(const Tokenizer& tokenizer, std::span<const SampledToken> tokens, size_t offset);
// The same for an echoed prompt: its first token has null logprobs, token i
// (i >= 1) gets scored[i - 1]. Offsets start at 0; `end` gets the byte offset
// after the last token.
ojson prompt_logprobs(const Tokenizer& tokenizer, TokenId first, std::span<const SampledToken> scored, size_t& end);
// Appends b's lists to a's (both completions-style logprobs).
void append_logprobs(ojson& a, const ojson& b);
// Chat-style: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}].
ojson chat_logprobs_content(const Tokenizer& tokenizer, std::span<const SampledToken> tokens, int32_t top);

std::string_view finish_reason_text(FinishReason r);  // "stop" | "length"

}  // namespace flint::server
