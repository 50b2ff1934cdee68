#include "runtime/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace flint {

namespace {

void insert_sorted(std::vector<SeqId>& list, SeqId id) {
  list.insert(std::lower_bound(list.begin(), list.end(), id), id);
}

void erase_sorted(std::vector<SeqId>& list, SeqId id) {
  auto it = std::lower_bound(list.begin(), list.end(), id);
  if (it != list.end() && *it == id) list.erase(it);
}

}  // namespace

void SchedulerOptions::validate() const {
  auto field = [](const char* name) { return ErrorContext{.field = name}; };
  FLINT_CHECK(max_num_seqs >= 1, field("max_num_seqs"), "must be at least 1, got {}", max_num_seqs);
  // Every running sequence must be able to decode in every step.
  FLINT_CHECK(max_num_batched_tokens >= max_num_seqs, field("max_num_batched_tokens"),
              "must be at least max_num_seqs ({}), got {}", max_num_seqs, max_num_batched_tokens);
  FLINT_CHECK(num_blocks >= 1, field("num_kv_blocks"), "must be at least 1, got {}", num_blocks);
  FLINT_CHECK(block_size >= 1, field("block_size"), "must be at least 1, got {}", block_size);
}

int64_t StepPlan::num_tokens() const {
  int64_t n = 0;
  for (const ScheduledChunk& c : chunks) n += c.count;
  return n;
}

Scheduler::Scheduler(SchedulerOptions options)
    : options_((options.validate(), options)), blocks_(options.num_blocks, options.block_size) {}

void Scheduler::add(SeqId id, int64_t num_tokens, int64_t max_chunk) {
  FLINT_ASSERT(id > last_added_);
  FLINT_ASSERT(num_tokens > 0 && max_chunk >= 0);
  last_added_ = id;
  seqs_[id] = SeqState{num_tokens, 0, max_chunk, false};
  waiting_.push_back(id);
}

void Scheduler::append_token(SeqId id) {
  auto it = seqs_.find(id);
  FLINT_ASSERT(it != seqs_.end());
  ++it->second.num_tokens;
}

void Scheduler::remove(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  erase_sorted(it->second.running ? running_ : waiting_, id);
  blocks_.release(id);
  seqs_.erase(it);
}

int64_t Scheduler::num_tokens(SeqId id) const {
  auto it = seqs_.find(id);
  FLINT_ASSERT(it != seqs_.end());
  return it->second.num_tokens;
}

int64_t Scheduler::num_cached(SeqId id) const {
  auto it = seqs_.find(id);
  FLINT_ASSERT(it != seqs_.end());
  return it->second.num_cached;
}

void Scheduler::preempt(SeqId id, StepPlan& plan, int64_t& budget) {
  SeqState& s = seqs_.at(id);
  auto planned =
      std::find_if(plan.chunks.begin(), plan.chunks.end(), [&](const ScheduledChunk& c) { return c.seq == id; });
  if (planned != plan.chunks.end()) {
    budget += planned->count;
    plan.chunks.erase(planned);
  }
  blocks_.release(id);
  s.num_cached = 0;
  s.running = false;
  erase_sorted(running_, id);
  insert_sorted(waiting_, id);
  plan.preempted.push_back(id);
  ++preemptions_;
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int64_t budget = options_.max_num_batched_tokens;

  // Running sequences: decode tokens first, then prefill chunks.
  std::vector<SeqId> order;
  order.reserve(running_.size());
  for (int pass = 0; pass < 2; ++pass)
    for (SeqId id : running_) {
      const SeqState& s = seqs_.at(id);
      const int64_t pending = s.num_tokens - s.num_cached;
      if (pending > 0 && (pending == 1) == (pass == 0)) order.push_back(id);
    }
  for (SeqId id : order) {
    if (budget == 0) break;
    SeqState& s = seqs_.at(id);
    if (!s.running) continue;  // preempted earlier in this step
    const int64_t n = std::min({s.num_tokens - s.num_cached, budget, s.max_chunk > 0 ? s.max_chunk : budget});
    bool scheduled = true;
    while (!blocks_.ensure(id, s.num_cached + n)) {
      if (running_.size() == 1) {  // alone, and the pool is still too small
        plan.out_of_blocks.push_back(id);
        scheduled = false;
        break;
      }
      const SeqId victim = running_.back();
      preempt(victim, plan, budget);
      if (victim == id) {
        scheduled = false;
        break;
      }
    }
    if (!scheduled) continue;
    plan.chunks.push_back({id, s.num_cached, n, s.num_cached + n == s.num_tokens});
    s.num_cached += n;
    budget -= n;
  }

  // Waiting sequences, oldest first. One is admitted only when the blocks for
  // all of its tokens are free (or nothing else runs), so that a new sequence
  // does not start a prefill that the next step's decodes would preempt.
  if (plan.preempted.empty() && plan.out_of_blocks.empty()) {
    int64_t promised = 0;  // blocks that sequences admitted in this step will still need
    const int32_t B = block_size();
    while (!waiting_.empty() && num_running() < options_.max_num_seqs && budget > 0) {
      const SeqId id = waiting_.front();
      SeqState& s = seqs_.at(id);
      const int64_t need = blocks_.blocks_for(s.num_tokens);
      const int64_t free = static_cast<int64_t>(blocks_.free_blocks()) - promised;
      if (!running_.empty() && need > free) break;
      const int64_t n =
          std::min({s.num_tokens, budget, std::max<int64_t>(free, 0) * B, s.max_chunk > 0 ? s.max_chunk : budget});
      if (n <= 0) break;
      FLINT_ASSERT(blocks_.ensure(id, n));
      promised += std::max<int64_t>(need - blocks_.blocks_for(n), 0);
      waiting_.erase(waiting_.begin());
      insert_sorted(running_, id);
      s.running = true;
      s.num_cached = 0;
      plan.chunks.push_back({id, 0, n, n == s.num_tokens});
      s.num_cached = n;
      budget -= n;
    }
  }
  return plan;
}

}  // namespace flint
