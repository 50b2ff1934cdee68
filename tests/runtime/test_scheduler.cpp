// The scheduler's policy, as pure logic: budgets, chunked prefill, admission,
// preemption of the newest sequence, and progress under KV pressure.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "core/error.h"
#include "runtime/scheduler.h"

namespace flint {
namespace {

SchedulerOptions opts(int32_t seqs, int32_t tokens, int32_t blocks, int32_t block_size = 4) {
  SchedulerOptions o;
  o.max_num_seqs = seqs;
  o.max_num_batched_tokens = tokens;
  o.num_blocks = blocks;
  o.block_size = block_size;
  return o;
}

const ScheduledChunk* find(const StepPlan& p, SeqId id) {
  for (const ScheduledChunk& c : p.chunks)
    if (c.seq == id) return &c;
  return nullptr;
}

// The engine's part: every chunk that samples adds a token.
void after_step(Scheduler& s, const StepPlan& p) {
  for (const ScheduledChunk& c : p.chunks)
    if (c.samples) s.append_token(c.seq);
}

TEST(Scheduler, ChunksALongPromptUnderTheTokenBudget) {
  Scheduler s(opts(4, 8, 100));
  s.add(0, 20);
  std::vector<std::pair<int64_t, int64_t>> chunks;
  std::vector<bool> samples;
  for (int step = 0; step < 3; ++step) {
    StepPlan p = s.schedule();
    ASSERT_EQ(p.chunks.size(), 1u);
    chunks.emplace_back(p.chunks[0].start, p.chunks[0].count);
    samples.push_back(p.chunks[0].samples);
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<int64_t, int64_t>>{{0, 8}, {8, 8}, {16, 4}}));
  EXPECT_EQ(samples, (std::vector<bool>{false, false, true}));  // only the last chunk's logits are sampled
  EXPECT_EQ(s.num_cached(0), 20);
}

TEST(Scheduler, DecodesOneTokenPerStepAfterThePrompt) {
  Scheduler s(opts(4, 8, 100));
  s.add(0, 5);
  StepPlan p = s.schedule();
  after_step(s, p);
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].start, 5);
  EXPECT_EQ(p.chunks[0].count, 1);
  EXPECT_TRUE(p.chunks[0].samples);
  EXPECT_EQ(s.num_cached(0), 6);
  EXPECT_EQ(s.num_tokens(0), 6);
}

TEST(Scheduler, DecodesComeFirstAndPrefillsShareTheRestOfTheBudget) {
  Scheduler s(opts(4, 10, 100));
  s.add(0, 3);
  after_step(s, s.schedule());  // 0 decodes from now on
  s.add(1, 30);
  s.add(2, 5);
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq, 0);
  EXPECT_EQ(p.chunks[0].count, 1);
  EXPECT_EQ(p.chunks[1].seq, 1);
  EXPECT_EQ(p.chunks[1].count, 9);  // 2 waits: the budget is spent
  EXPECT_EQ(s.num_waiting(), 1);
  after_step(s, p);
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq, 0);  // decode
  EXPECT_EQ(p.chunks[1].seq, 1);  // prefill goes on before anyone new is admitted
  EXPECT_EQ(p.chunks[1].start, 9);
  EXPECT_EQ(p.num_tokens(), 10);
}

TEST(Scheduler, RespectsMaxNumSeqsAndAdmitsOldestFirst) {
  Scheduler s(opts(2, 64, 100));
  for (SeqId id = 0; id < 4; ++id) s.add(id, 3);
  StepPlan p = s.schedule();
  EXPECT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 2);
  after_step(s, p);
  s.remove(0);  // finished: its slot and blocks are free at once
  EXPECT_EQ(s.num_running(), 1);
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq, 1);  // decode
  EXPECT_EQ(p.chunks[1].seq, 2);  // admitted before 3
}

TEST(Scheduler, RemoveFreesBlocksAtOnce) {
  Scheduler s(opts(4, 64, 10));
  s.add(0, 20);  // 5 blocks of 4
  s.schedule();
  EXPECT_EQ(s.used_blocks(), 5);
  s.remove(0);
  EXPECT_EQ(s.used_blocks(), 0);
  EXPECT_FALSE(s.has_work());
  s.remove(0);  // twice is harmless
  s.add(1, 4);
  s.remove(1);  // a waiting sequence too
  EXPECT_FALSE(s.has_work());
}

TEST(Scheduler, ANewSequenceWaitsForItsWholePromptsBlocksWhileOthersRun) {
  Scheduler s(opts(4, 64, 6));
  s.add(0, 12);  // 3 blocks
  after_step(s, s.schedule());
  s.add(1, 16);  // 4 blocks; 2 free once 0 takes its 4th
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq, 0);
  EXPECT_EQ(s.num_waiting(), 1);
  s.remove(0);
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq, 1);
  EXPECT_EQ(p.chunks[0].count, 16);
}

TEST(Scheduler, PreemptsTheNewestSequenceWhenBlocksRunOut) {
  // 4 blocks of 4 tokens.
  Scheduler s(opts(4, 64, 4));
  s.add(0, 8);  // 2 blocks
  after_step(s, s.schedule());
  s.add(1, 4);
  StepPlan p = s.schedule();  // 0 decodes into a 3rd block; 1 takes the 4th
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(s.used_blocks(), 4);
  after_step(s, p);
  // 0 has 10 tokens (3 blocks hold them), 1 has 5 and needs a 2nd block: it is
  // the newest, so it preempts itself.
  p = s.schedule();
  EXPECT_EQ(p.preempted, (std::vector<SeqId>{1}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq, 0);
  EXPECT_EQ(s.num_cached(1), 0);
  EXPECT_EQ(s.num_tokens(1), 5);  // its sampled token is kept, and will be recomputed
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_EQ(s.used_blocks(), 3);
  EXPECT_EQ(s.num_waiting(), 1);
  after_step(s, p);
  s.remove(0);
  p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq, 1);
  EXPECT_EQ(p.chunks[0].start, 0);
  EXPECT_EQ(p.chunks[0].count, 5);  // prompt + generated token, recomputed
  EXPECT_TRUE(p.chunks[0].samples);
}

TEST(Scheduler, AnOlderSequenceTakesTheBlocksOfTheNewest) {
  // 5 blocks of 4: three sequences of 4 tokens, then all decode. The oldest
  // ones keep going; the newest goes back to the waiting list.
  Scheduler s(opts(4, 64, 5));
  for (SeqId id = 0; id < 3; ++id) s.add(id, 4);
  after_step(s, s.schedule());  // 3 blocks, each sequence at 5 tokens
  StepPlan p = s.schedule();    // each needs a 2nd block: 6 > 5
  EXPECT_EQ(p.preempted, (std::vector<SeqId>{2}));
  EXPECT_NE(find(p, 0), nullptr);
  EXPECT_NE(find(p, 1), nullptr);
  EXPECT_EQ(find(p, 2), nullptr);
  EXPECT_EQ(s.running(), (std::vector<SeqId>{0, 1}));
  EXPECT_EQ(s.used_blocks(), 4);
}

TEST(Scheduler, ASequenceBiggerThanThePoolEndsOutOfBlocks) {
  Scheduler s(opts(4, 64, 2));
  s.add(0, 8);  // exactly the pool
  StepPlan p = s.schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  after_step(s, p);
  p = s.schedule();  // token 9 needs a third block and 0 is alone
  EXPECT_TRUE(p.chunks.empty());
  EXPECT_EQ(p.out_of_blocks, (std::vector<SeqId>{0}));
  s.remove(0);
  EXPECT_EQ(s.used_blocks(), 0);
}

TEST(Scheduler, RejectsBadOptionsNamingTheField) {
  auto field_of = [](const SchedulerOptions& o) -> std::string {
    try {
      Scheduler s(o);
    } catch (const Error& e) {
      return e.context().field;
    }
    return "";
  };
  EXPECT_EQ(field_of(opts(0, 8, 8)), "max_num_seqs");
  EXPECT_EQ(field_of(opts(8, 4, 8)), "max_num_batched_tokens");  // must fit a decode token of each sequence
  EXPECT_EQ(field_of(opts(8, 8, 0)), "num_kv_blocks");
}

// Random arrivals and lengths on a small pool: no step exceeds its budgets,
// no sequence is planned twice, the oldest running sequence runs in every
// step, every sequence finishes, and the pool is empty at the end.
TEST(Scheduler, RandomLoadAlwaysDrains) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    const int32_t B = 4, blocks = 24, max_seqs = 6, budget = 16;
    Scheduler s(opts(max_seqs, budget, blocks, B));
    std::map<SeqId, int64_t> target;  // length at which a sequence finishes (may exceed the pool)
    SeqId next = 0;
    int64_t finished = 0, steps = 0;
    const int total = 40;
    while (finished < total) {
      ASSERT_LT(++steps, 20000) << "seed " << seed << ": no progress";
      if (next < total && rng() % 3 == 0) {
        const int64_t prompt = 1 + rng() % 30;
        target[next] = prompt + 1 + rng() % 100;
        s.add(next++, prompt);
      }
      if (!s.has_work()) continue;
      const SeqId oldest = s.running().empty() ? -1 : s.running().front();
      StepPlan p = s.schedule();
      ASSERT_LE(p.num_tokens(), budget);
      ASSERT_LE(s.num_running(), max_seqs);
      if (oldest >= 0) {
        ASSERT_TRUE(find(p, oldest) != nullptr ||
                    std::find(p.out_of_blocks.begin(), p.out_of_blocks.end(), oldest) != p.out_of_blocks.end())
            << "seed " << seed << ": the oldest sequence did not run";
      }
      std::set<SeqId> seen;
      for (const ScheduledChunk& c : p.chunks) {
        ASSERT_TRUE(seen.insert(c.seq).second);
        ASSERT_GT(c.count, 0);
        ASSERT_EQ(c.start + c.count, s.num_cached(c.seq));
        ASSERT_EQ(c.samples, c.start + c.count == s.num_tokens(c.seq));
        ASSERT_GE(static_cast<int64_t>(s.block_table(c.seq).size()) * B, c.start + c.count);
      }
      for (SeqId id : p.out_of_blocks) {
        ASSERT_GT(s.num_tokens(id), blocks * B);
        s.remove(id);
        target.erase(id);
        ++finished;
      }
      for (const ScheduledChunk& c : p.chunks) {
        if (!c.samples) continue;
        s.append_token(c.seq);
        if (s.num_tokens(c.seq) >= target.at(c.seq)) {
          s.remove(c.seq);
          target.erase(c.seq);
          ++finished;
        }
      }
    }
    EXPECT_EQ(s.used_blocks(), 0) << "seed " << seed;
    EXPECT_FALSE(s.has_work());
  }
}

}  // namespace
}  // namespace flint
