// runtime/scheduler.h — continuous batching: which sequences run in a step,
// with how many tokens, and who owns which KV block.
//
// Contract:
// - Pure logic over token counts and a KvBlockManager; no model, no threads.
//   The engine loop owns it; it is not thread-safe.
// - Sequences are identified by SeqId, and ids increase with arrival: a larger
//   id is a newer sequence. Every list here is kept in arrival order.
// - schedule() plans one step under three limits: at most max_num_seqs
//   running sequences, at most max_num_batched_tokens tokens, and the blocks
//   of the pool. Running sequences come first: every decode token (in arrival
//   order), then the next prefill chunk of each sequence still in prefill.
//   Waiting sequences are admitted after that, oldest first and never out of
//   order, with a chunk that fits the token budget and the free blocks — unless
//   this step preempted someone.
// - A running sequence that needs a block when none is free preempts the
//   newest running sequence (vLLM's recompute policy): its blocks are freed at
//   once, its chunk leaves the plan, its cached count drops to 0 and it goes
//   back to the waiting list, to be prefilled again (prompt and generated
//   tokens) when blocks allow. A sequence that is itself the newest preempts
//   itself. The oldest running sequence therefore always makes progress.
// - A sequence that is alone and still cannot grow needs more than the whole
//   pool: it is listed in StepPlan::out_of_blocks and not scheduled; the
//   engine ends it (finish reason "length"). Nothing is ever dropped silently.
// - schedule() counts the planned tokens as cached (the engine runs the step
//   right after). append_token() adds a sampled token; remove() forgets a
//   sequence (finished or cancelled) and frees its blocks at once.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "runtime/kv_blocks.h"

namespace flint {

using SeqId = int64_t;

struct SchedulerOptions {
  int32_t max_num_seqs = 64;              // running sequences (holding blocks) at once
  int32_t max_num_batched_tokens = 2048;  // tokens per step; >= max_num_seqs
  int32_t num_blocks = 0;                 // KV pool size in blocks
  int32_t block_size = 16;                // tokens per block

  void validate() const;  // flint::Error naming the field (max_num_seqs, ...)
};

struct ScheduledChunk {
  SeqId seq = 0;
  int64_t start = 0;     // tokens of the sequence already in the cache
  int64_t count = 0;     // tokens computed in this step: [start, start + count)
  bool samples = false;  // reaches the sequence's last token: its logits give the next token
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // decode tokens first, then prefill chunks
  std::vector<SeqId> preempted;        // lost their cache in this step
  std::vector<SeqId> out_of_blocks;    // need more than the whole pool; not scheduled
  int64_t num_tokens() const;
  bool empty() const { return chunks.empty() && out_of_blocks.empty(); }
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);

  // A new sequence of `num_tokens` tokens (its prompt) joins the waiting list.
  // `id` must be larger than every id added before. `max_chunk` > 0 caps the
  // tokens it computes per step (a sequence that wants the logits of every
  // prompt token bounds its logits this way).
  void add(SeqId id, int64_t num_tokens, int64_t max_chunk = 0);
  void append_token(SeqId id);
  void remove(SeqId id);
  StepPlan schedule();

  bool contains(SeqId id) const { return seqs_.count(id) != 0; }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  // The blocks holding the sequence's cached positions, in order.
  const std::vector<int32_t>& block_table(SeqId id) const { return blocks_.blocks(id); }
  int64_t num_tokens(SeqId id) const;
  int64_t num_cached(SeqId id) const;

  const std::vector<SeqId>& running() const { return running_; }  // arrival order
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_blocks() const { return blocks_.num_blocks(); }
  int32_t used_blocks() const { return blocks_.used_blocks(); }
  int32_t block_size() const { return blocks_.block_size(); }
  int64_t num_preemptions() const { return preemptions_; }
  // Most tokens one sequence can ever hold: the whole pool.
  int64_t capacity_tokens() const { return static_cast<int64_t>(num_blocks()) * block_size(); }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct SeqState {
    int64_t num_tokens = 0;
    int64_t num_cached = 0;
    int64_t max_chunk = 0;  // 0: no cap
    bool running = false;
  };

  void preempt(SeqId id, StepPlan& plan, int64_t& budget);

  SchedulerOptions options_;
  KvBlockManager blocks_;
  std::unordered_map<SeqId, SeqState> seqs_;
  std::vector<SeqId> running_;  // sorted by id (arrival order)
  std::vector<SeqId> waiting_;  // sorted by id
  SeqId last_added_ = -1;
  int64_t preemptions_ = 0;
};

}  // namespace flint
