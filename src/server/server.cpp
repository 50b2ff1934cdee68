#include "server/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>

#include "core/error.h"
#include "server/metrics.h"
#include "server/openai_api.h"

namespace flint {

using namespace server;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mutex);
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

void send_json(httplib::Response& res, int status, const ojson& body) {
  res.status = status;
  res.set_content(to_json_text(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e.what(), e.type, e.param));
}

std::string sse(const ojson& j) { return "data: " + to_json_text(j) + "\n\n"; }

// httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled
// into Debian's library): a burst of clients would see dropped connections.
// Linux lets listen() be called again on a listening socket to raise it.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) {
    const socket_t sock = svr_sock_;
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

struct Choice {
  std::string text;
  std::vector<SampledToken> tokens;
  std::vector<SampledToken> prompt_lp;  // echo with logprobs: scores of prompt tokens 1..
  FinishReason finish = FinishReason::none;
  bool cancelled = false;
  std::string error;
  bool ended = false;
  Clock::time_point first_token, last_token;
};

}  // namespace

struct OpenAiServer::Impl {
  Impl(Engine& e, const Tokenizer& t, ServerOptions o)
      : engine(e), tokenizer(t), options(std::move(o)), prompter(options.tokenizer_dir, tokenizer) {
    model.name = options.served_model_name.empty() ? "flint" : options.served_model_name;
    model.max_model_len = engine.max_model_len();
    model.vocab_size = tokenizer.vocab_size();
  }

  // Counts a request that holds engine work, from its submission until its
  // response (streamed or not) is gone. Null while shutting down.
  struct InFlight {
    explicit InFlight(Impl& i) : impl(i) {}
    ~InFlight() {
      {
        std::lock_guard lock(impl.mutex);
        --impl.in_flight;
      }
      impl.changed.notify_all();
    }
    Impl& impl;
  };
  std::shared_ptr<InFlight> enter() {
    std::lock_guard lock(mutex);
    if (draining) return nullptr;
    ++in_flight;
    return std::make_shared<InFlight>(*this);
  }

  struct Generation;
  void routes();
  void handle_generation(const httplib::Request& req, httplib::Response& res, bool chat);
  void respond_whole(Generation& g, httplib::Response& res);
  void respond_stream(std::shared_ptr<Generation> g, httplib::Response& res);

  Engine& engine;
  const Tokenizer& tokenizer;
  ServerOptions options;
  ChatPrompter prompter;
  ModelInfo model;
  ServerMetrics metrics;
  HttpServer http;
  const int64_t created = unix_now();

  std::mutex mutex;
  std::condition_variable changed;
  int64_t in_flight = 0;
  bool draining = false;
  bool serving = false;
  bool served = false;
};

// One API request's work in the engine: the choices it asked for, what has
// arrived for each, and the ids to cancel if the response goes away first.
struct OpenAiServer::Impl::Generation {
  Generation(Impl& i, bool is_chat) : impl(i), chat(is_chat) {}
  ~Generation() {
    if (ids.empty()) return;  // refused before it reached the engine
    for (size_t c = 0; c < ids.size(); ++c)
      if (!choices[c].ended) impl.engine.cancel(ids[c]);
    impl.metrics.request_latency(seconds_since(arrival));
    for (const Choice& c : choices)
      if (c.tokens.size() >= 2)
        impl.metrics.per_output_token(std::chrono::duration<double>(c.last_token - c.first_token).count() /
                                      static_cast<double>(c.tokens.size() - 1));
  }

  // Applies one event to its choice.
  void apply(const RequestEvent& e) {
    Choice& c = choices.at(e.tag);
    if (e.token) {
      const auto now = Clock::now();
      if (c.tokens.empty()) c.first_token = now;
      c.last_token = now;
      if (!any_token) {
        any_token = true;
        impl.metrics.first_token(seconds_since(arrival));
      }
      c.tokens.push_back(*e.token);
    }
    if (!e.prompt_logprobs.empty()) c.prompt_lp = e.prompt_logprobs;
    c.text += e.text;
    if (e.last()) {
      c.ended = true;
      c.finish = e.finish;
      c.cancelled = e.cancelled;
      c.error = e.error;
      ++ended;
    }
  }
  bool done() const { return ended == choices.size(); }

  ojson usage() const {
    int64_t completion = 0;
    for (const Choice& c : choices) completion += static_cast<int64_t>(c.tokens.size());
    return ojson{{"prompt_tokens", prompt_tokens},
                 {"completion_tokens", completion},
                 {"total_tokens", prompt_tokens + completion}};
  }
  ojson chunk(ojson choices_json) const {
    return ojson{{"id", id},
                 {"object", chat ? "chat.completion.chunk" : "text_completion"},
                 {"created", created},
                 {"model", impl.model.name},
                 {"choices", std::move(choices_json)}};
  }

  Impl& impl;
  bool chat;
  std::string endpoint;
  std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
  int64_t created = unix_now();
  Clock::time_point arrival = Clock::now();
  std::shared_ptr<InFlight> in_flight;
  std::shared_ptr<RequestOutputs> outputs = std::make_shared<RequestOutputs>();
  std::vector<RequestId> ids;
  std::vector<Choice> choices;
  std::vector<std::string> echo;            // per choice: prompt text to put first (completions with echo)
  std::vector<TokenId> first_prompt_token;  // per choice, for echoed logprobs
  bool echo_logprobs = false;               // echo and logprobs: the prompt's logprobs come first
  size_t ended = 0;
  bool any_token = false;
  int64_t prompt_tokens = 0;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool include_usage = false;
};

void OpenAiServer::Impl::handle_generation(const httplib::Request& req, httplib::Response& res, bool chat) {
  const std::string endpoint = chat ? "chat_completions" : "completions";
  auto g = std::make_shared<Generation>(*this, chat);
  g->endpoint = endpoint;
  try {
    g->in_flight = enter();
    if (!g->in_flight) throw ApiError(503, "the server is shutting down", "", "server_error");
    std::vector<EngineRequest> requests;
    bool stream = false;
    if (chat) {
      ChatRequest r = parse_chat_request(req.body, model, tokenizer, prompter);
      stream = r.stream;
      g->include_usage = r.include_usage;
      g->logprobs = r.logprobs;
      g->top_logprobs = r.sampling.logprobs;
      g->prompt_tokens = static_cast<int64_t>(r.prompt.size());
      for (int32_t j = 0; j < r.n; ++j) {
        EngineRequest e{r.prompt, r.sampling};
        if (e.params.seed && j > 0) *e.params.seed += static_cast<uint64_t>(j);
        requests.push_back(std::move(e));
      }
    } else {
      CompletionRequest r = parse_completion_request(req.body, model, tokenizer);
      stream = r.stream;
      g->echo_logprobs = r.echo && r.logprobs;
      g->include_usage = r.include_usage;
      g->logprobs = r.logprobs;
      g->top_logprobs = r.sampling.logprobs;
      for (size_t p = 0; p < r.prompts.size(); ++p) {
        g->prompt_tokens += static_cast<int64_t>(r.prompts[p].size());
        for (int32_t j = 0; j < r.n; ++j) {
          EngineRequest e{r.prompts[p], r.sampling};
          if (e.params.seed && j > 0) *e.params.seed += static_cast<uint64_t>(j);
          if (g->echo_logprobs) e.prompt_logprobs = r.sampling.logprobs;
          requests.push_back(std::move(e));
          g->echo.push_back(r.echo ? r.prompt_texts[p] : std::string());
          g->first_prompt_token.push_back(r.prompts[p].front());
        }
      }
    }
    g->choices.resize(requests.size());
    try {
      g->ids = engine.submit(std::move(requests), g->outputs);
    } catch (const Error& e) {
      std::string param = e.context().field;
      if (chat && param == "prompt") param = "messages";
      throw ApiError(400, e.message(), param);
    } catch (const EngineBusy& e) {
      throw ApiError(503, e.what(), "", "server_error");
    } catch (const EngineStopped& e) {
      throw ApiError(503, e.what(), "", "server_error");
    }
    if (stream) {
      metrics.request_done(endpoint, 200);
      respond_stream(std::move(g), res);
    } else {
      respond_whole(*g, res);
      metrics.request_done(endpoint, res.status);
    }
  } catch (const ApiError& e) {
    send_error(res, e);
    metrics.request_done(endpoint, e.status);
  } catch (const std::exception& e) {
    send_json(res, 500, error_body(fmt::format("internal error: {}", e.what()), "server_error", ""));
    metrics.request_done(endpoint, 500);
  }
}

void OpenAiServer::Impl::respond_whole(Generation& g, httplib::Response& res) {
  while (!g.done())
    for (const RequestEvent& e : g.outputs->wait()) g.apply(e);
  for (const Choice& c : g.choices) {
    if (!c.error.empty()) throw ApiError(500, c.error, "", "server_error");
    if (c.cancelled) throw ApiError(503, "the request was cancelled: the server is shutting down", "", "server_error");
  }
  ojson choices = ojson::array();
  for (size_t i = 0; i < g.choices.size(); ++i) {
    const Choice& c = g.choices[i];
    ojson choice = ojson::object();
    choice["index"] = i;
    if (g.chat) {
      choice["message"] = ojson{{"role", "assistant"}, {"content", c.text}};
      choice["logprobs"] =
          g.logprobs ? ojson{{"content", chat_logprobs_content(tokenizer, c.tokens, g.top_logprobs)}} : ojson(nullptr);
    } else {
      choice["text"] = g.echo[i] + c.text;
      if (g.echo_logprobs) {
        size_t end = 0;
        ojson lp = prompt_logprobs(tokenizer, g.first_prompt_token[i], c.prompt_lp, end);
        append_logprobs(lp, completion_logprobs(tokenizer, c.tokens, end));
        choice["logprobs"] = std::move(lp);
      } else {
        choice["logprobs"] = g.logprobs ? completion_logprobs(tokenizer, c.tokens, 0) : ojson(nullptr);
      }
    }
    choice["finish_reason"] = finish_reason_text(c.finish);
    choices.push_back(std::move(choice));
  }
  ojson body = {{"id", g.id},
                {"object", g.chat ? "chat.completion" : "text_completion"},
                {"created", g.created},
                {"model", model.name},
                {"choices", std::move(choices)},
                {"usage", g.usage()}};
  send_json(res, 200, body);
}

void OpenAiServer::Impl::respond_stream(std::shared_ptr<Generation> g, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  auto started = std::make_shared<bool>(false);
  auto offsets = std::make_shared<std::vector<size_t>>(g->choices.size(), 0);  // text bytes sent per choice
  auto echoed = std::make_shared<std::vector<bool>>(g->choices.size(), false);
  res.set_chunked_content_provider("text/event-stream", [this, g, started, offsets, echoed](size_t,
                                                                                            httplib::DataSink& sink) {
    try {
      std::string out;
      if (!*started) {
        *started = true;
        for (size_t i = 0; g->chat && i < g->choices.size(); ++i)
          out += sse(g->chunk(ojson::array({ojson{{"index", i},
                                                  {"delta", {{"role", "assistant"}, {"content", ""}}},
                                                  {"logprobs", nullptr},
                                                  {"finish_reason", nullptr}}})));
      }
      for (const RequestEvent& e : g->outputs->wait()) {
        g->apply(e);
        const Choice& c = g->choices[e.tag];
        // Completions with echo: the prompt goes first, with its logprobs
        // when asked (they come with the first token).
        if (!g->chat && !g->echo[e.tag].empty() && !(*echoed)[e.tag]) {
          (*echoed)[e.tag] = true;
          ojson lp = nullptr;
          size_t end = g->echo[e.tag].size();
          if (g->echo_logprobs) lp = prompt_logprobs(tokenizer, g->first_prompt_token[e.tag], c.prompt_lp, end);
          (*offsets)[e.tag] = end;
          out += sse(g->chunk(ojson::array(
              {ojson{{"index", e.tag}, {"text", g->echo[e.tag]}, {"logprobs", lp}, {"finish_reason", nullptr}}})));
        }
        if (!e.error.empty() || e.cancelled) {
          const std::string message = e.cancelled ? "the request was cancelled: the server is shutting down" : e.error;
          out += sse(error_body(message, "server_error", ""));
          continue;
        }
        std::span<const SampledToken> token;
        if (e.token) token = std::span<const SampledToken>(&c.tokens.back(), 1);
        ojson lp = nullptr;
        ojson choice = ojson::object();
        choice["index"] = e.tag;
        if (g->chat) {
          ojson delta = ojson::object();
          if (!e.text.empty() || e.finish == FinishReason::none) delta["content"] = e.text;
          choice["delta"] = std::move(delta);
          if (g->logprobs && e.token) lp = ojson{{"content", chat_logprobs_content(tokenizer, token, g->top_logprobs)}};
        } else {
          choice["text"] = e.text;
          if (g->logprobs && e.token) lp = completion_logprobs(tokenizer, token, (*offsets)[e.tag]);
        }
        if (e.token) (*offsets)[e.tag] += token_text(tokenizer, e.token->id).size();
        choice["logprobs"] = std::move(lp);
        choice["finish_reason"] = e.finish == FinishReason::none ? ojson(nullptr) : ojson(finish_reason_text(e.finish));
        out += sse(g->chunk(ojson::array({std::move(choice)})));
      }
      if (g->done()) {
        if (g->include_usage) {
          ojson last = g->chunk(ojson::array());
          last["usage"] = g->usage();
          out += sse(last);
        }
        out += "data: [DONE]\n\n";
      }
      // A failed write means the client is gone: returning false ends the
      // response, and dropping `g` cancels whatever is still running.
      if (!out.empty() && !sink.write(out.data(), out.size())) return false;
      if (g->done()) sink.done();
      return true;
    } catch (const std::exception&) {
      return false;  // ends the response; dropping `g` cancels the rest
    }
  });
}

void OpenAiServer::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + options.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_json(res, 401,
              error_body("invalid or missing API key (expected 'Authorization: Bearer <key>')", "invalid_request_error",
                         "", "invalid_api_key"));
    metrics.request_done("auth", 401);
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message = res.status == 404 ? fmt::format("no route for {} {}", req.method, req.path)
                                                  : fmt::format("HTTP error {}", res.status);
    res.set_content(to_json_text(error_body(message, "invalid_request_error", "")), "application/json");
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_body("internal error: " + what, "server_error", ""));
  });

  http.Post("/v1/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_generation(req, res, false); });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_generation(req, res, true); });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    ojson m = {{"id", model.name},    {"object", "model"},  {"created", created},
               {"owned_by", "flint"}, {"root", model.name}, {"max_model_len", model.max_model_len}};
    send_json(res, 200, ojson{{"object", "list"}, {"data", ojson::array({m})}});
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    bool down;
    {
      std::lock_guard lock(mutex);
      down = draining;
    }
    send_json(res, down ? 503 : 200, ojson{{"status", down ? "shutting down" : "ok"}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(engine.stats()), "text/plain; version=0.0.4");
  });
}

OpenAiServer::OpenAiServer(Engine& engine, const Tokenizer& tokenizer, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, tokenizer, std::move(options))) {
  Impl& s = *impl_;
  const EngineOptions& e = engine.options();
  const int threads =
      s.options.http_threads > 0 ? s.options.http_threads : std::min(e.max_num_seqs + e.max_queued_requests + 8, 1024);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_keep_alive_timeout(2);
  s.http.set_payload_max_length(64u << 20);
  s.routes();
}

OpenAiServer::~OpenAiServer() { shutdown(); }

int OpenAiServer::bind() {
  Impl& s = *impl_;
  int port = s.options.port;
  bool ok;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.options.host);
    ok = port > 0;
  } else {
    ok = s.http.bind_to_port(s.options.host, port);
  }
  FLINT_CHECK(ok, ErrorContext{.field = "--port"}, "cannot listen on {}:{} (address in use, or not a local address?)",
              s.options.host, s.options.port);
  s.http.raise_backlog(1024);
  return port;
}

void OpenAiServer::serve() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mutex);
    if (s.draining) return;
    s.serving = true;
  }
  s.http.listen_after_bind();
  {
    std::lock_guard lock(s.mutex);
    s.served = true;
  }
  s.changed.notify_all();
}

void OpenAiServer::shutdown() {
  Impl& s = *impl_;
  std::unique_lock lock(s.mutex);
  if (s.draining) {
    // A second caller (or the destructor) waits for the first to finish.
    s.changed.wait(lock, [&] { return !s.serving || s.served; });
    return;
  }
  s.draining = true;
  const auto grace = std::chrono::duration<double>(s.options.shutdown_grace_seconds);
  if (!s.changed.wait_for(lock, grace, [&] { return s.in_flight == 0; })) {
    lock.unlock();
    s.engine.cancel_all();
    lock.lock();
    s.changed.wait_for(lock, std::chrono::seconds(10), [&] { return s.in_flight == 0; });
  }
  // listen_after_bind() may not have started yet: stop until serve() returns.
  while (s.serving && !s.served) {
    lock.unlock();
    s.http.stop();
    lock.lock();
    s.changed.wait_for(lock, std::chrono::milliseconds(50), [&] { return s.served; });
  }
}

}  // namespace flint
