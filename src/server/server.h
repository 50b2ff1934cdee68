// server/server.h — the OpenAI-compatible HTTP front of a runtime Engine.
//
// Contract:
// - Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models,
//   GET /health, GET /metrics (Prometheus text). docs/SERVING.md lists the
//   request fields, the response shapes and the metric names.
// - Every request ends with a well-formed HTTP response: an invalid request
//   gets 400 with {"error": {"message", "type": "invalid_request_error",
//   "param": <field or null>, "code": null}}; a full engine queue or a server
//   that is shutting down gets 503; a missing or wrong API key gets 401; an
//   unknown route 404. No request body can crash the server.
// - Streaming responses are server-sent events ("data: {json}\n\n"), one per
//   generated token, ending with "data: [DONE]". When the client goes away the
//   next write fails and the request is cancelled in the engine, which frees
//   its KV blocks.
// - shutdown() (thread-safe, e.g. from a signal thread): new API requests get
//   503, requests in flight may finish for `shutdown_grace_seconds`, then the
//   rest are cancelled, then serve() returns.
// - The server knows the Engine, the tokenizer and the chat template; it knows
//   nothing of kernels or devices. httplib stays inside server/.
#pragma once

#include <memory>
#include <string>

#include "runtime/engine.h"
#include "tokenizer/tokenizer.h"

namespace flint {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                // 0: any free port; bind() returns it
  std::string api_key;            // empty: no authentication
  std::string served_model_name;  // empty: "flint"
  std::string tokenizer_dir;      // where the chat template lives; empty: built-in template
  int http_threads = 0;           // 0: enough for every request the engine accepts, plus a few
  double shutdown_grace_seconds = 30;
};

class OpenAiServer {
 public:
  // `engine` and `tokenizer` must outlive the server. Throws flint::Error when
  // the chat template does not parse.
  OpenAiServer(Engine& engine, const Tokenizer& tokenizer, ServerOptions options);
  ~OpenAiServer();
  OpenAiServer(const OpenAiServer&) = delete;
  OpenAiServer& operator=(const OpenAiServer&) = delete;

  int bind();       // returns the bound port; flint::Error naming --host/--port on failure
  void serve();     // handles requests until shutdown() completes
  void shutdown();  // see the contract; idempotent

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flint
