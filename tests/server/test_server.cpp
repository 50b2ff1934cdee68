// `flint serve` end to end: the real binary on a free loopback port, driven
// over real HTTP. Every test starts its own server and stops it on exit.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "server_process.h"

namespace flint::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Small, fast defaults: a 1024-token KV pool keeps start-up cheap.
const std::vector<std::string> kSmall = {"--num-kv-blocks", "64", "--max-num-batched-tokens", "256"};

std::vector<std::string> with(std::vector<std::string> extra) {
  std::vector<std::string> a = kSmall;
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

json greedy_completion(json prompt, int max_tokens) {
  return {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
}

std::vector<int> ids(int seed, int n) {
  std::vector<int> v;
  uint32_t x = static_cast<uint32_t>(seed) * 2654435761u + 17;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    v.push_back(static_cast<int>(32 + (x >> 8) % 20000));
  }
  return v;
}

// The JSON of each data event of a stream except the final [DONE].
std::vector<json> chunks_of(const StreamReply& r) {
  std::vector<json> out;
  for (const std::string& e : r.events)
    if (e != "[DONE]") out.push_back(json::parse(e));
  return out;
}

std::string metrics(int port) { return http_get(port, "/metrics").body; }

// Polls until `pred` holds (or fails the test after `seconds`).
template <typename Pred>
void eventually(Pred pred, const char* what, double seconds = 15) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "timed out waiting for: " << what;
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
}

TEST(Serve, HealthModelsAndShutdownExitZero) {
  // 1024 B of K/V per token: 0.001 GiB holds 65 blocks of 16 tokens.
  ServerProcess server({"--served-model-name", "tiny-test", "--host", "127.0.0.1", "--kv-cache-gib", "0.001"});
  ASSERT_TRUE(server.ready());
  EXPECT_EQ(metric_value(metrics(server.port()), "flint_kv_blocks_total"), 65);
  EXPECT_EQ(http_get(server.port(), "/health").status, 200);
  const HttpReply models = http_get(server.port(), "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.json()["object"], "list");
  EXPECT_EQ(models.json()["data"][0]["id"], "tiny-test");
  EXPECT_EQ(models.json()["data"][0]["max_model_len"], 8192);
  const HttpReply missing = http_get(server.port(), "/v1/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(missing.json().contains("error"));
  EXPECT_EQ(server.stop(), 0) << server.log();
}

TEST(Serve, CompletionNonStreaming) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  json req = greedy_completion("Hello", 5);
  req["model"] = "dummy:tiny";
  const HttpReply r = http_post(server.port(), "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "dummy:tiny");
  EXPECT_TRUE(j["id"].get<std::string>().rfind("cmpl-", 0) == 0);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_TRUE(j["choices"][0]["text"].is_string());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], 6);  // BOS + 5 bytes (the byte tokenizer)
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 11);

  // echo puts the prompt first; the same greedy text follows.
  req["echo"] = true;
  const json echoed = http_post(server.port(), "/v1/completions", req.dump()).json();
  EXPECT_EQ(echoed["choices"][0]["text"], "Hello" + j["choices"][0]["text"].get<std::string>());

  // echo with logprobs scores the prompt too: the first token has none.
  req["logprobs"] = 1;
  const json scored = http_post(server.port(), "/v1/completions", req.dump()).json();
  const json& lp = scored["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 6u + 5u);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["tokens"][1], "H");
  EXPECT_LE(lp["token_logprobs"][1].get<double>(), 0.0);
  EXPECT_EQ(lp["top_logprobs"][1].size(), 1u);
  // Streamed: the echo chunk carries the prompt's logprobs, then one chunk per token.
  req["stream"] = true;
  const StreamReply s = http_post_stream(server.port(), "/v1/completions", req.dump());
  const std::vector<json> chunks = chunks_of(s);
  ASSERT_EQ(chunks.size(), 1u + 5u);
  EXPECT_EQ(chunks[0]["choices"][0]["text"], "Hello");
  EXPECT_EQ(chunks[0]["choices"][0]["logprobs"]["tokens"].size(), 6u);
  EXPECT_EQ(chunks[1]["choices"][0]["logprobs"]["text_offset"][0],
            lp["text_offset"][6]);  // offsets continue after the prompt's
}

TEST(Serve, TokenIdPromptsSeedsAndN) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  json req = {{"prompt", ids(1, 12)}, {"max_tokens", 6}, {"temperature", 1.0}, {"seed", 42}, {"n", 2},
              {"ignore_eos", true},   {"logprobs", 2}};
  const json a = http_post(server.port(), "/v1/completions", req.dump()).json();
  const json b = http_post(server.port(), "/v1/completions", req.dump()).json();
  ASSERT_EQ(a["choices"].size(), 2u);
  EXPECT_EQ(a["usage"]["prompt_tokens"], 12);
  EXPECT_EQ(a["usage"]["completion_tokens"], 12);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a["choices"][i]["index"], i);
    EXPECT_EQ(a["choices"][i]["logprobs"]["tokens"], b["choices"][i]["logprobs"]["tokens"]) << "same seed, same tokens";
    const json& lp = a["choices"][i]["logprobs"];
    EXPECT_EQ(lp["tokens"].size(), 6u);
    EXPECT_EQ(lp["token_logprobs"].size(), 6u);
    EXPECT_EQ(lp["top_logprobs"].size(), 6u);
    EXPECT_LE(lp["top_logprobs"][0].size(), 2u);
    EXPECT_EQ(lp["text_offset"][0], 0);
    EXPECT_LE(lp["token_logprobs"][0].get<double>(), 0.0);
  }
  // The two choices draw from different seeds.
  EXPECT_NE(a["choices"][0]["logprobs"]["tokens"], a["choices"][1]["logprobs"]["tokens"]);
}

TEST(Serve, CompletionStreamingMatchesNonStreaming) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  json req = greedy_completion(ids(2, 20), 8);
  const json whole = http_post(server.port(), "/v1/completions", req.dump()).json();
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  const StreamReply s = http_post_stream(server.port(), "/v1/completions", req.dump());
  ASSERT_EQ(s.status, 200);
  ASSERT_FALSE(s.events.empty());
  EXPECT_EQ(s.events.back(), "[DONE]");
  const std::vector<json> chunks = chunks_of(s);
  ASSERT_EQ(chunks.size(), 8u + 1u);  // one per token, then usage
  std::string text;
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(chunks[i]["object"], "text_completion");
    text += chunks[i]["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(chunks[i]["choices"][0]["finish_reason"].is_null(), i < 7);
  }
  EXPECT_EQ(chunks[7]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(text, whole["choices"][0]["text"].get<std::string>());
  EXPECT_TRUE(chunks[8]["choices"].empty());
  EXPECT_EQ(chunks[8]["usage"]["completion_tokens"], 8);
  EXPECT_EQ(chunks[8]["usage"]["prompt_tokens"], 20);
}

TEST(Serve, ChatStreamingAndNot) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  json req = {{"messages",
               {{{"role", "system"}, {"content", "Be brief."}},
                {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Hi there"}}}}}}},
              {"max_tokens", 6},
              {"temperature", 0},
              {"ignore_eos", true},
              {"logprobs", true},
              {"top_logprobs", 3}};
  const HttpReply r = http_post(server.port(), "/v1/chat/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_TRUE(j["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string content = j["choices"][0]["message"]["content"];
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 20);  // the template's headers and both messages
  const json& lp = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 6u);
  EXPECT_EQ(lp[0]["top_logprobs"].size(), 3u);
  EXPECT_TRUE(lp[0]["bytes"].is_array());

  req["stream"] = true;
  const StreamReply s = http_post_stream(server.port(), "/v1/chat/completions", req.dump());
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(s.events.back(), "[DONE]");
  const std::vector<json> chunks = chunks_of(s);
  ASSERT_GE(chunks.size(), 7u);
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  std::string streamed;
  for (const json& c : chunks) {
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    if (c["choices"][0]["delta"].contains("content"))
      streamed += c["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(streamed, content);
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
}

TEST(Serve, StopStringsEndWithStop) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  // The byte tokenizer maps every id to one byte: take a stop string from the
  // middle of the free-running greedy text.
  const json free_run = http_post(server.port(), "/v1/completions", greedy_completion(ids(3, 10), 12).dump()).json();
  const std::string text = free_run["choices"][0]["text"];
  ASSERT_GE(text.size(), 6u);
  size_t at = 3;
  while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;  // a character boundary
  ASSERT_LT(at, text.size());
  const std::string stop = text.substr(at, 1);
  json req = greedy_completion(ids(3, 10), 12);
  req["stop"] = {stop, "never-matches"};
  const json stopped = http_post(server.port(), "/v1/completions", req.dump()).json();
  EXPECT_EQ(stopped["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(stopped["choices"][0]["text"].get<std::string>(), text.substr(0, text.find(stop)));
}

TEST(Serve, ThirtyTwoConcurrentRequestsAreAllCorrect) {
  ServerProcess server(with({"--max-num-seqs", "32"}));
  ASSERT_TRUE(server.ready());
  // Eight distinct prompts, each first alone (the reference), then four times
  // among 32 concurrent requests, half of them streamed.
  std::vector<std::string> reference(8);
  for (int p = 0; p < 8; ++p) {
    const json j = http_post(server.port(), "/v1/completions", greedy_completion(ids(p, 5 + 9 * p), 8).dump()).json();
    reference[static_cast<size_t>(p)] = j["choices"][0]["text"];
  }
  std::vector<std::string> got(32);
  std::vector<int> status(32, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back([&, i] {
      json req = greedy_completion(ids(i % 8, 5 + 9 * (i % 8)), 8);
      if (i % 2 == 0) {
        const HttpReply r = http_post(server.port(), "/v1/completions", req.dump());
        status[static_cast<size_t>(i)] = r.status;
        if (r.status != 200) got[static_cast<size_t>(i)] = r.error;
        if (r.status == 200) got[static_cast<size_t>(i)] = json::parse(r.body)["choices"][0]["text"];
      } else {
        req["stream"] = true;
        const StreamReply s = http_post_stream(server.port(), "/v1/completions", req.dump());
        status[static_cast<size_t>(i)] = s.status;
        std::string text;
        for (const std::string& e : s.events) {
          if (e == "[DONE]") continue;
          const json c = json::parse(e, nullptr, false);
          if (c.is_discarded() || !c.contains("choices") || c["choices"].empty()) {
            text += "<bad event: " + e + ">";
            continue;
          }
          text += c["choices"][0]["text"].get<std::string>();
        }
        got[static_cast<size_t>(i)] = text;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < 32; ++i) {
    EXPECT_EQ(status[i], 200) << i;
    EXPECT_EQ(got[i], reference[i % 8]) << "request " << i << " differs from the same prompt alone";
  }
  const std::string m = metrics(server.port());
  EXPECT_EQ(metric_value(m, "flint_requests_total{endpoint=\"completions\",status=\"200\"}"), 40);
  EXPECT_EQ(metric_value(m, "flint_generation_tokens_total"), 40 * 8);
}

TEST(Serve, ClientThatHangsUpMidStreamIsCancelled) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  json req = greedy_completion(ids(4, 16), 900);
  req["stream"] = true;
  int seen = 0;
  const StreamReply s =
      http_post_stream(server.port(), "/v1/completions", req.dump(), [&](const std::string&) { return ++seen < 3; });
  EXPECT_TRUE(s.hung_up);
  eventually(
      [&] {
        const std::string m = metrics(server.port());
        return metric_value(m, "flint_engine_requests_total{outcome=\"cancelled\"}") == 1 &&
               metric_value(m, "flint_kv_blocks_used") == 0 && metric_value(m, "flint_num_requests_running") == 0;
      },
      "the abandoned request to be cancelled and its KV blocks freed");
  const std::string m = metrics(server.port());
  EXPECT_LT(metric_value(m, "flint_generation_tokens_total"), 900);
  // The server is healthy and serves the next request.
  EXPECT_EQ(http_get(server.port(), "/health").status, 200);
  EXPECT_EQ(http_post(server.port(), "/v1/completions", greedy_completion("again", 3).dump()).status, 200);
}

struct BadRequest {
  const char* path;
  std::string body;
  const char* param;  // nullptr: the error names no field
};

TEST(Serve, BadRequestsGet400NamingTheField) {
  ServerProcess server(kSmall);  // a 64-block (1024-token) KV pool
  ASSERT_TRUE(server.ready());
  const char* C = "/v1/completions";
  const char* CHAT = "/v1/chat/completions";
  auto with_field = [](const char* key, json value) {
    json j = {{"prompt", "x"}};
    j[key] = std::move(value);
    return j.dump();
  };
  const json too_long = greedy_completion(ids(5, 8192), 1);  // the whole context
  const json beyond_pool = greedy_completion(ids(5, 2000), 1);
  std::string deep(100000, '[');
  std::vector<BadRequest> cases = {
      {C, "not json", nullptr},
      {C, "[1, 2]", nullptr},
      {C, deep, nullptr},
      {C, "{\"prompt\": \"\xff\xfe\"}", nullptr},  // invalid UTF-8
      {C, "{}", "prompt"},
      {C, R"({"prompt": 5})", "prompt"},
      {C, R"({"prompt": []})", "prompt"},
      {C, R"({"prompt": [1, "a"]})", "prompt"},
      {C, R"({"prompt": [999999999]})", "prompt"},
      {C, R"({"prompt": [-1]})", "prompt"},
      {C, too_long.dump(), "prompt"},
      {C, beyond_pool.dump(), "prompt"},
      {C, with_field("model", "gpt-4"), "model"},
      {C, with_field("model", 3), "model"},
      {C, with_field("max_tokens", 0), "max_tokens"},
      {C, with_field("max_tokens", -3), "max_tokens"},
      {C, with_field("max_tokens", "10"), "max_tokens"},
      {C, with_field("max_tokens", 1.5), "max_tokens"},
      {C, with_field("max_tokens", 1e30), "max_tokens"},
      {C, with_field("temperature", -0.5), "temperature"},
      {C, with_field("temperature", "hot"), "temperature"},
      {C, with_field("top_p", 1.5), "top_p"},
      {C, with_field("top_k", -2), "top_k"},
      {C, with_field("min_p", -0.1), "min_p"},
      {C, with_field("n", 0), "n"},
      {C, with_field("n", 1000), "n"},
      {C, with_field("stop", 3), "stop"},
      {C, with_field("stop", json::array({""})), "stop"},
      {C, with_field("seed", "abc"), "seed"},
      {C, with_field("stream", "yes"), "stream"},
      {C, with_field("logprobs", 50), "logprobs"},
      {C, with_field("echo", 1), "echo"},
      {C, with_field("presence_penalty", 3), "presence_penalty"},
      {C, with_field("frequency_penalty", -2.5), "frequency_penalty"},
      {C, with_field("stop_token_ids", json::array({-4})), "stop_token_ids"},
      {C, with_field("stream_options", "x"), "stream_options"},
      {CHAT, R"({"messages": "hi"})", "messages"},
      {CHAT, R"({"messages": []})", "messages"},
      {CHAT, R"({})", "messages"},
      {CHAT, R"({"messages": [5]})", "messages[0]"},
      {CHAT, R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {CHAT, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {CHAT, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content[0]"},
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})",
       "max_completion_tokens"},
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "temperature": null, "top_p": -1})", "top_p"},
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": 1})", "add_generation_prompt"},
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": "yes"})",
       "continue_final_message"},
      // Both true, also with add_generation_prompt left at its default (vLLM refuses that too).
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true,
                 "add_generation_prompt": true})",
       "continue_final_message"},
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true})",
       "continue_final_message"},
      // Nothing to continue: the final message has no content.
      {CHAT, R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": []}],
                 "continue_final_message": true, "add_generation_prompt": false})",
       "messages"},
  };
  for (const BadRequest& c : cases) {
    const HttpReply r = http_post(server.port(), c.path, c.body);
    const std::string what = std::string(c.path) + " " + c.body.substr(0, 80);
    ASSERT_EQ(r.status, 400) << what << " -> " << r.body;
    const json j = r.json();
    ASSERT_TRUE(j.contains("error")) << what;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << what;
    EXPECT_TRUE(j["error"]["message"].is_string()) << what;
    EXPECT_TRUE(j["error"]["code"].is_null()) << what;
    if (c.param)
      EXPECT_EQ(j["error"]["param"], c.param) << what;
    else
      EXPECT_TRUE(j["error"]["param"].is_null()) << what << " -> " << r.body;
  }
  // Nothing above hurt the server.
  EXPECT_EQ(http_get(server.port(), "/health").status, 200);
  EXPECT_EQ(http_post(server.port(), C, greedy_completion("ok", 2).dump()).status, 200);
  EXPECT_EQ(metric_value(metrics(server.port()), "flint_requests_total{endpoint=\"completions\",status=\"400\"}"), 36);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// add_generation_prompt and continue_final_message as vLLM takes them. The
// dummy model's byte tokenizer makes prompt_tokens the byte length of the
// rendered prompt (the built-in Llama 3 format), so usage shows exactly what
// the template wrote: with continue_final_message it ends right after the
// assistant's prefill, without "<|eot_id|>".
TEST(Serve, ChatAddGenerationPromptAndContinueFinalMessage) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  auto header = [](const std::string& role) { return "<|start_header_id|>" + role + "<|end_header_id|>\n\n"; };
  const std::string prefill = "<|bos|>" + header("system") + "Be brief.<|eot_id|>" + header("user") + "Hi<|eot_id|>" +
                              header("assistant") + "Hello";
  const json messages = {{{"role", "system"}, {"content", "Be brief."}},
                         {{"role", "user"}, {"content", "Hi"}},
                         {{"role", "assistant"}, {"content", "Hello"}}};
  struct Case {
    json add_generation_prompt;   // null: not sent
    json continue_final_message;  // null: not sent
    int status;
    std::string prompt;  // the rendered prompt, for status 200
  };
  const std::vector<Case> cases = {
      {nullptr, nullptr, 200, prefill + "<|eot_id|>" + header("assistant")},
      {true, false, 200, prefill + "<|eot_id|>" + header("assistant")},
      {false, nullptr, 200, prefill + "<|eot_id|>"},
      {false, false, 200, prefill + "<|eot_id|>"},
      {false, true, 200, prefill},
      {true, true, 400, ""},
      {nullptr, true, 400, ""},
  };
  for (const Case& c : cases) {
    json req = {{"messages", messages}, {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}};
    if (!c.add_generation_prompt.is_null()) req["add_generation_prompt"] = c.add_generation_prompt;
    if (!c.continue_final_message.is_null()) req["continue_final_message"] = c.continue_final_message;
    const HttpReply r = http_post(server.port(), "/v1/chat/completions", req.dump());
    ASSERT_EQ(r.status, c.status) << req.dump() << " -> " << r.body;
    if (c.status != 200) {
      EXPECT_EQ(r.json()["error"]["param"], "continue_final_message") << req.dump();
      continue;
    }
    EXPECT_EQ(r.json()["usage"]["prompt_tokens"], c.prompt.size()) << req.dump();
  }
  // The continuation is the model's greedy text after exactly that prompt:
  // the completions endpoint given the same bytes as token ids agrees.
  const json cont = {{"messages", messages},
                     {"max_tokens", 6},
                     {"temperature", 0},
                     {"ignore_eos", true},
                     {"add_generation_prompt", false},
                     {"continue_final_message", true}};
  const json chat = http_post(server.port(), "/v1/chat/completions", cont.dump()).json();
  std::vector<int> prompt_ids(prefill.begin(), prefill.end());
  const json plain = http_post(server.port(), "/v1/completions", greedy_completion(prompt_ids, 6).dump()).json();
  EXPECT_EQ(chat["choices"][0]["message"]["content"], plain["choices"][0]["text"]);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

TEST(Serve, FullQueueGets503) {
  ServerProcess server(with({"--max-num-seqs", "1", "--max-queued-requests", "0"}));
  ASSERT_TRUE(server.ready());
  std::atomic<bool> streaming{false}, release{false};
  std::thread first([&] {
    json req = greedy_completion(ids(6, 8), 2000);
    req["stream"] = true;
    http_post_stream(server.port(), "/v1/completions", req.dump(), [&](const std::string&) {
      streaming = true;
      return !release.load();
    });
  });
  eventually([&] { return streaming.load(); }, "the first request to stream");
  const HttpReply busy = http_post(server.port(), "/v1/completions", greedy_completion("x", 2).dump());
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_EQ(busy.json()["error"]["type"], "server_error");
  release = true;
  first.join();
  eventually([&] { return metric_value(metrics(server.port()), "flint_num_requests_running") == 0; }, "idle");
  EXPECT_EQ(http_post(server.port(), "/v1/completions", greedy_completion("x", 2).dump()).status, 200);
}

TEST(Serve, KvExhaustionPreemptsAndEveryRequestFinishes) {
  // 12 blocks of 16 tokens for 8 requests of 24 + 24 tokens (3 blocks each).
  ServerProcess server({"--num-kv-blocks", "12", "--max-num-seqs", "8", "--max-num-batched-tokens", "64"});
  ASSERT_TRUE(server.ready());
  std::vector<std::string> reference(2);
  for (int p = 0; p < 2; ++p)
    reference[static_cast<size_t>(p)] =
        http_post(server.port(), "/v1/completions", greedy_completion(ids(10 + p, 24), 24).dump())
            .json()["choices"][0]["text"];
  std::vector<json> got(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] {
      const HttpReply r = http_post(server.port(), "/v1/completions", greedy_completion(ids(10 + i, 24), 24).dump());
      got[static_cast<size_t>(i)] = r.status == 200 ? json::parse(r.body) : json{{"status", r.status}};
    });
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(got[i].contains("choices")) << i << ": " << got[i].dump();
    EXPECT_EQ(got[i]["usage"]["completion_tokens"], 24) << i;
    EXPECT_EQ(got[i]["choices"][0]["finish_reason"], "length") << i;
    if (i < 2) {
      EXPECT_EQ(got[i]["choices"][0]["text"], reference[i]) << "recomputation changed request " << i;
    }
  }
  const std::string m = metrics(server.port());
  EXPECT_GT(metric_value(m, "flint_preemptions_total"), 0);
  EXPECT_EQ(metric_value(m, "flint_kv_blocks_used"), 0);
  EXPECT_EQ(metric_value(m, "flint_kv_blocks_total"), 12);
  EXPECT_EQ(metric_value(m, "flint_engine_requests_total{outcome=\"finished\"}"), 10);
}

TEST(Serve, MetricsMoveAsRequestsRun) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  const std::string before = metrics(server.port());
  EXPECT_EQ(metric_value(before, "flint_kv_blocks_total"), 64);
  EXPECT_EQ(metric_value(before, "flint_time_to_first_token_seconds_count"), 0);
  EXPECT_EQ(metric_value(before, "flint_num_requests_running"), 0);
  ASSERT_EQ(http_post(server.port(), "/v1/completions", greedy_completion(ids(7, 6), 4).dump()).status, 200);
  http_post(server.port(), "/v1/completions", R"({"prompt": "x", "n": -1})");
  const std::string after = metrics(server.port());
  EXPECT_EQ(metric_value(after, "flint_requests_total{endpoint=\"completions\",status=\"200\"}"), 1);
  EXPECT_EQ(metric_value(after, "flint_requests_total{endpoint=\"completions\",status=\"400\"}"), 1);
  EXPECT_EQ(metric_value(after, "flint_prompt_tokens_total"), 6);
  EXPECT_EQ(metric_value(after, "flint_generation_tokens_total"), 4);
  EXPECT_EQ(metric_value(after, "flint_time_to_first_token_seconds_count"), 1);
  EXPECT_EQ(metric_value(after, "flint_time_per_output_token_seconds_count"), 1);
  EXPECT_EQ(metric_value(after, "flint_e2e_request_latency_seconds_count"), 1);
  EXPECT_EQ(metric_value(after, "flint_engine_requests_total{outcome=\"finished\"}"), 1);
  EXPECT_GT(metric_value(after, "flint_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 0);
  EXPECT_EQ(metric_value(after, "flint_kv_blocks_used"), 0);
}

TEST(Serve, ApiKeyGuardsTheApi) {
  ServerProcess server(with({"--api-key", "s3cret"}));
  ASSERT_TRUE(server.ready());
  const HttpReply none = http_get(server.port(), "/v1/models");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.json()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(http_get(server.port(), "/v1/models", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(http_post(server.port(), "/v1/completions", greedy_completion("x", 1).dump()).status, 401);
  EXPECT_EQ(http_get(server.port(), "/v1/models", {{"Authorization", "Bearer s3cret"}}).status, 200);
  EXPECT_EQ(http_post(server.port(), "/v1/completions", greedy_completion("x", 1).dump(),
                      {{"Authorization", "Bearer s3cret"}})
                .status,
            200);
  EXPECT_EQ(http_get(server.port(), "/health").status, 200);  // probes need no key
}

// Streams `req` and sends the server SIGTERM once the first event arrived;
// returns the whole stream.
StreamReply stream_then_sigterm(ServerProcess& server, json req) {
  req["stream"] = true;
  std::atomic<bool> started{false};
  StreamReply s;
  std::thread client([&] {
    s = http_post_stream(server.port(), "/v1/completions", req.dump(), [&](const std::string&) {
      started = true;
      return true;
    });
  });
  eventually([&] { return started.load(); }, "the stream to start");
  server.signal(SIGTERM);
  client.join();
  return s;
}

TEST(Serve, SigtermLetsInFlightRequestsFinish) {
  ServerProcess server(kSmall);
  ASSERT_TRUE(server.ready());
  const StreamReply s = stream_then_sigterm(server, greedy_completion(ids(8, 10), 40));
  EXPECT_EQ(server.wait(20), 0) << server.log();
  ASSERT_FALSE(s.events.empty());
  EXPECT_EQ(s.events.back(), "[DONE]");
  const std::vector<json> chunks = chunks_of(s);
  ASSERT_EQ(chunks.size(), 40u);
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
}

TEST(Serve, SigtermCancelsWhatOutlastsTheGracePeriod) {
  ServerProcess server(with({"--shutdown-grace", "0.2"}));
  ASSERT_TRUE(server.ready());
  const StreamReply s = stream_then_sigterm(server, greedy_completion(ids(9, 10), 5000));
  EXPECT_EQ(server.wait(20), 0) << server.log();
  ASSERT_GE(s.events.size(), 2u);
  EXPECT_EQ(s.events.back(), "[DONE]");
  const json last = json::parse(s.events[s.events.size() - 2]);
  EXPECT_TRUE(last.contains("error")) << last.dump();
}

}  // namespace
}  // namespace flint::testing
