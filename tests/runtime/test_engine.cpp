// The serving engine on a small random model on the CPU: outputs equal the
// offline Generator's, do not depend on the batch, survive preemption, and
// every request ends with exactly one last event.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include "backends/backends.h"
#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/small_model.h"

namespace flint {
namespace {

using namespace std::chrono_literals;

struct SmallModel {
  SmallModel() {
    const LlamaConfig c = testing::small_llama_config(/*tie_word_embeddings=*/true);
    ModelSource source;
    source.origin = "test:small";
    source.config = c;
    source.weights = make_dummy_weights(c, DType::f32, 7);
    source.is_dummy = true;
    backend = make_backend(Device::cpu);
    model = std::make_unique<LlamaModel>(source, *backend);
    tokenizer = make_byte_tokenizer(512, 1, {2});
  }
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

SmallModel& small() {
  static SmallModel m;
  return m;
}

EngineOptions engine_options(int32_t blocks = 256, int32_t max_seqs = 32, int32_t max_tokens = 64) {
  EngineOptions o;
  o.num_kv_blocks = blocks;
  o.block_size = 16;
  o.max_num_seqs = max_seqs;
  o.max_num_batched_tokens = max_tokens;
  o.kv_dtype = DType::f32;
  return o;
}

std::vector<TokenId> prompt_of(uint32_t seed, size_t len) {
  std::mt19937 rng(seed);
  std::vector<TokenId> p;
  for (size_t i = 0; i < len; ++i) p.push_back(static_cast<TokenId>(3 + rng() % 500));
  return p;
}

EngineRequest greedy(std::vector<TokenId> prompt, int32_t max_tokens) {
  EngineRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.logprobs = 2;
  return r;
}

struct Collected {
  std::vector<SampledToken> tokens;
  std::vector<SampledToken> prompt_logprobs;
  std::string text;
  RequestEvent last;
  int last_events = 0;
};

// Reads events until every request of the group has ended.
std::vector<Collected> collect(RequestOutputs& out, size_t n) {
  std::vector<Collected> got(n);
  size_t ended = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ended < n) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "timed out waiting for the engine";
      break;
    }
    for (RequestEvent& e : out.wait_for(1000ms)) {
      Collected& c = got.at(e.tag);
      if (e.token) c.tokens.push_back(*e.token);
      if (!e.prompt_logprobs.empty()) c.prompt_logprobs = e.prompt_logprobs;
      c.text += e.text;
      if (e.last()) {
        ++c.last_events;
        ++ended;
        c.last = e;
      }
    }
  }
  return got;
}

std::vector<Collected> run(Engine& engine, std::vector<EngineRequest> requests) {
  auto out = std::make_shared<RequestOutputs>();
  const size_t n = requests.size();
  engine.submit(std::move(requests), out);
  return collect(*out, n);
}

std::vector<TokenId> ids(const Collected& c) {
  std::vector<TokenId> v;
  for (const SampledToken& t : c.tokens) v.push_back(t.id);
  return v;
}

// Ids and logprobs (chosen and top-n), compared exactly.
bool same_logprobs(const std::vector<SampledToken>& a, const std::vector<SampledToken>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].logprob != b[i].logprob || a[i].top_logprobs != b[i].top_logprobs) return false;
  return true;
}

void wait_idle(Engine& engine) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const EngineStats s = engine.stats();
    if (s.running == 0 && s.waiting == 0 && engine.unfinished() == 0) return;
    std::this_thread::sleep_for(5ms);
  }
  ADD_FAILURE() << "the engine did not become idle";
}

TEST(Engine, GreedyOutputsEqualTheOfflineGenerator) {
  SmallModel& m = small();
  std::vector<GenerationRequest> offline;
  std::vector<EngineRequest> online;
  for (uint32_t i = 0; i < 3; ++i) {
    EngineRequest r = greedy(prompt_of(i, 10 + 17 * i), 12);
    offline.push_back({r.prompt, r.params});
    online.push_back(std::move(r));
  }
  Generator gen(*m.model, *m.tokenizer);
  const auto expected = gen.run(offline);
  Engine engine(*m.model, *m.tokenizer, engine_options());
  const auto got = run(engine, std::move(online));
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(ids(got[i]), expected[i].tokens) << i;
    EXPECT_EQ(got[i].text, expected[i].text) << i;
    EXPECT_EQ(got[i].last.finish, FinishReason::length);
    EXPECT_EQ(got[i].last_events, 1);
  }
}

// One request alone, then the same request among 31 others of mixed lengths
// arriving together, with a small token budget so that prefill chunks and
// decode tokens share steps: the same tokens, bit for bit the same logprobs
// (the CPU backend sums every row in one order, backends/cpu/cpu_kernels.h).
TEST(Engine, GreedyOutputDoesNotDependOnTheBatch) {
  SmallModel& m = small();
  const EngineRequest probe = greedy(prompt_of(99, 40), 24);
  Engine engine(*m.model, *m.tokenizer, engine_options(512, 32, 48));
  const auto alone = run(engine, {probe});
  ASSERT_EQ(alone[0].tokens.size(), 24u);

  std::vector<EngineRequest> crowd;
  for (uint32_t i = 0; i < 31; ++i) crowd.push_back(greedy(prompt_of(i, 5 + (i * 7) % 60), 8 + i % 20));
  crowd.insert(crowd.begin() + 13, probe);
  const auto together = run(engine, crowd);
  EXPECT_EQ(ids(together[13]), ids(alone[0]));
  EXPECT_TRUE(same_logprobs(together[13].tokens, alone[0].tokens));
  EXPECT_EQ(together[13].text, alone[0].text);
  EXPECT_GT(engine.stats().steps, 24);
}

TEST(Engine, ASeedGivesTheSameSamplesAloneAndInABatch) {
  SmallModel& m = small();
  auto sampled = [](uint64_t seed) {
    EngineRequest r;
    r.prompt = prompt_of(5, 20);
    r.params.temperature = 0.9f;
    r.params.top_p = 0.95f;
    r.params.max_tokens = 16;
    r.params.ignore_eos = true;
    r.params.seed = seed;
    return r;
  };
  Engine engine(*m.model, *m.tokenizer, engine_options());
  const auto a = run(engine, {sampled(1)});
  std::vector<EngineRequest> batch;
  for (uint32_t i = 0; i < 6; ++i) batch.push_back(greedy(prompt_of(i, 30), 10));
  batch.push_back(sampled(1));
  batch.push_back(sampled(2));
  const auto b = run(engine, std::move(batch));
  EXPECT_EQ(ids(b[6]), ids(a[0]));
  EXPECT_NE(ids(b[7]), ids(a[0]));  // 16 draws from a near-uniform distribution
}

// A pool far smaller than the load: sequences are preempted and recomputed,
// and each still gives exactly the tokens and logprobs it gives alone (its
// generated tokens come back as prefill rows, bit for bit the same).
TEST(Engine, PreemptionKeepsOutputsAndFinishesEveryRequest) {
  SmallModel& m = small();
  std::vector<EngineRequest> requests;
  for (uint32_t i = 0; i < 8; ++i) requests.push_back(greedy(prompt_of(100 + i, 20 + 3 * i), 40));
  Engine roomy(*m.model, *m.tokenizer, engine_options(512, 8, 64));
  const auto expected = run(roomy, requests);
  Engine tight(*m.model, *m.tokenizer, engine_options(12, 8, 64));  // 192 tokens for 8 x ~90
  const auto got = run(tight, requests);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(ids(got[i]), ids(expected[i])) << i;
    EXPECT_TRUE(same_logprobs(got[i].tokens, expected[i].tokens)) << i;
    EXPECT_EQ(got[i].last.finish, FinishReason::length) << i;
    EXPECT_EQ(got[i].last_events, 1) << i;
  }
  wait_idle(tight);
  const EngineStats s = tight.stats();
  EXPECT_GT(s.preemptions, 0);
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_EQ(s.requests_finished, 8);
  EXPECT_GT(s.computed_tokens, roomy.stats().computed_tokens);  // the recomputation
}

TEST(Engine, ARequestLargerThanThePoolEndsWithLength) {
  SmallModel& m = small();
  Engine engine(*m.model, *m.tokenizer, engine_options(4, 4, 64));  // 64 tokens
  const auto got = run(engine, {greedy(prompt_of(1, 50), 100)});
  EXPECT_EQ(got[0].last.finish, FinishReason::length);
  EXPECT_EQ(got[0].tokens.size(), 15u);  // 50 + 15 = 65: the 65th token has no room
  wait_idle(engine);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(Engine, CancelFreesTheBlocksAndEndsTheRequest) {
  SmallModel& m = small();
  Engine engine(*m.model, *m.tokenizer, engine_options(64, 4, 64));
  auto out = std::make_shared<RequestOutputs>();
  const auto id = engine.submit({greedy(prompt_of(3, 30), 400)}, out).at(0);
  // Wait for the first token, then cancel.
  bool started = false;
  while (!started)
    for (const RequestEvent& e : out->wait()) started |= e.token.has_value();
  engine.cancel(id);
  const auto got = collect(*out, 1);
  EXPECT_TRUE(got[0].last.cancelled);
  EXPECT_LT(got[0].tokens.size(), 400u);
  wait_idle(engine);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().requests_cancelled, 1);
  engine.cancel(id);  // already gone: ignored
  const auto again = run(engine, {greedy(prompt_of(3, 30), 3)});
  EXPECT_EQ(again[0].tokens.size(), 3u);
}

TEST(Engine, RefusesWhenTheQueueIsFull) {
  SmallModel& m = small();
  EngineOptions o = engine_options(64, 1, 64);
  o.max_queued_requests = 1;
  Engine engine(*m.model, *m.tokenizer, o);
  auto out1 = std::make_shared<RequestOutputs>(), out2 = std::make_shared<RequestOutputs>();
  engine.submit({greedy(prompt_of(1, 10), 300)}, out1);  // runs
  engine.submit({greedy(prompt_of(2, 10), 300)}, out2);  // waits
  EXPECT_THROW(engine.submit({greedy(prompt_of(3, 10), 3)}, out1), EngineBusy);
  engine.cancel_all();
  EXPECT_TRUE(collect(*out1, 1)[0].last.cancelled);
  EXPECT_TRUE(collect(*out2, 1)[0].last.cancelled);
  wait_idle(engine);
  // A group is taken whole or not at all.
  o.max_queued_requests = 0;
  Engine one(*m.model, *m.tokenizer, o);
  EXPECT_THROW(one.submit({greedy(prompt_of(3, 10), 3), greedy(prompt_of(4, 10), 3)}, out1), EngineBusy);
  EXPECT_EQ(one.unfinished(), 0);
  wait_idle(engine);
  EXPECT_EQ(run(engine, {greedy(prompt_of(3, 10), 3)})[0].tokens.size(), 3u);
}

TEST(Engine, InvalidRequestsNameTheirField) {
  SmallModel& m = small();
  Engine engine(*m.model, *m.tokenizer, engine_options(8));
  auto field_of = [&](EngineRequest r) -> std::string {
    try {
      engine.submit({std::move(r)}, std::make_shared<RequestOutputs>());
    } catch (const Error& e) {
      return e.context().field;
    }
    return "(accepted)";
  };
  EXPECT_EQ(field_of(greedy({}, 4)), "prompt");
  EXPECT_EQ(field_of(greedy({5, 512}, 4)), "prompt");  // id outside the vocabulary
  EXPECT_EQ(field_of(greedy({5, -1}, 4)), "prompt");
  EXPECT_EQ(field_of(greedy(prompt_of(1, 129), 4)), "prompt");  // more than the 8-block pool
  EXPECT_EQ(field_of(greedy({5}, 0)), "max_tokens");
  EngineRequest hot = greedy({5}, 4);
  hot.params.temperature = -1;
  EXPECT_EQ(field_of(hot), "temperature");
  EXPECT_EQ(engine.unfinished(), 0);

  Engine roomy(*m.model, *m.tokenizer, engine_options(64));
  try {
    roomy.submit({greedy(prompt_of(1, 512), 4)}, std::make_shared<RequestOutputs>());
    ADD_FAILURE() << "a prompt as long as the context was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.context().field, "prompt");
  }
}

TEST(Engine, StopTokenIdsAndEosEndWithStop) {
  SmallModel& m = small();
  Engine engine(*m.model, *m.tokenizer, engine_options());
  const auto free_run = run(engine, {greedy(prompt_of(8, 12), 10)});
  ASSERT_EQ(free_run[0].tokens.size(), 10u);
  EngineRequest r = greedy(prompt_of(8, 12), 10);
  r.params.stop_token_ids = {free_run[0].tokens[4].id};
  const auto stopped = run(engine, {r});
  EXPECT_EQ(stopped[0].last.finish, FinishReason::stop);
  EXPECT_LE(stopped[0].tokens.size(), 5u);
  EXPECT_EQ(stopped[0].tokens.back().id, free_run[0].tokens[4].id);
}

TEST(Engine, ShutdownCancelsWhatIsInFlightAndRefusesMore) {
  SmallModel& m = small();
  auto engine = std::make_unique<Engine>(*m.model, *m.tokenizer, engine_options());
  auto out = std::make_shared<RequestOutputs>();
  engine->submit({greedy(prompt_of(1, 10), 400), greedy(prompt_of(2, 10), 400)}, out);
  engine->shutdown();
  const auto got = collect(*out, 2);
  EXPECT_TRUE(got[0].last.cancelled);
  EXPECT_TRUE(got[1].last.cancelled);
  EXPECT_EQ(engine->unfinished(), 0);
  EXPECT_THROW(engine->submit({greedy({5}, 1)}, out), EngineStopped);
  engine.reset();
}

// Echo with logprobs: every prompt token after the first is scored, across
// several chunks (a scoring sequence computes at most 64 tokens per step).
TEST(Engine, ScoresThePromptForEchoLogprobs) {
  SmallModel& m = small();
  Engine engine(*m.model, *m.tokenizer, engine_options(256, 8, 256));
  const std::vector<TokenId> prompt = prompt_of(11, 150);
  const auto first = run(engine, {greedy(prompt, 1)});
  ASSERT_EQ(first[0].tokens.size(), 1u);
  const SampledToken next = first[0].tokens[0];

  std::vector<TokenId> extended = prompt;
  extended.push_back(next.id);
  EngineRequest r = greedy(extended, 2);
  r.prompt_logprobs = 3;
  const auto got = run(engine, {r, greedy(prompt_of(12, 30), 5)});  // in company
  const std::vector<SampledToken>& scored = got[0].prompt_logprobs;
  ASSERT_EQ(scored.size(), 150u);
  for (size_t i = 0; i < scored.size(); ++i) {
    EXPECT_EQ(scored[i].id, extended[i + 1]) << i;
    EXPECT_LE(scored[i].logprob, 0.0f) << i;
    ASSERT_EQ(scored[i].top_logprobs.size(), 3u) << i;
  }
  // The last prompt token is what greedy decoding chose there: the same
  // logprob, bit for bit, though one was a decode row and the other a row of
  // a prefill chunk.
  EXPECT_EQ(scored.back().logprob, next.logprob);
  EXPECT_EQ(scored.back().top_logprobs[0].first, next.id);
  EXPECT_EQ(got[0].tokens.size(), 2u);
  EXPECT_TRUE(got[1].prompt_logprobs.empty());
}

TEST(Engine, KvBlocksFromTheMemoryBudget) {
  LlamaConfig c = small().model->config();  // 2 layers x 2 kv heads x 16 dims: 512 B/token in f32
  EngineOptions o;
  o.kv_dtype = DType::f32;
  o.block_size = 16;
  o.max_num_seqs = 64;
  o.kv_cache_bytes = 8192 * 100 + 5;
  EXPECT_EQ(resolve_num_kv_blocks(o, c), 100);
  o.max_num_seqs = 2;  // 2 sequences x 512 positions = 64 blocks are all they can use
  EXPECT_EQ(resolve_num_kv_blocks(o, c), 64);
  o.num_kv_blocks = 7;
  EXPECT_EQ(resolve_num_kv_blocks(o, c), 7);
  o.num_kv_blocks = 0;
  o.kv_cache_bytes = 100;
  EXPECT_THROW(resolve_num_kv_blocks(o, c), Error);
}

}  // namespace
}  // namespace flint
