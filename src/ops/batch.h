// ops/batch.h — one step's work, packed (the THD layout of DESIGN.md).
//
// Contract: the tokens of all sequences in the step sit back to back, no
// padding. Sequence s owns tokens [query_starts[s], query_starts[s+1]); they sit
// at positions [context_lens[s] - n_s, context_lens[s]) of that sequence, where
// n_s is its token count. So a prefill chunk, a whole prompt and a single decode
// token are the same thing: n_s tokens appended after context_lens[s] - n_s
// cached ones. The K/V of position p of sequence s lives in cache block
// block_tables[s][p / block_size] at row p % block_size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flint {

struct Batch {
  std::vector<int32_t> token_ids;     // [T]
  std::vector<int32_t> positions;     // [T] absolute position of each token in its sequence
  std::vector<int32_t> query_starts;  // [S + 1] token offsets of each sequence
  std::vector<int32_t> context_lens;  // [S] cached tokens once this step has run
  // [S, max_blocks_per_seq] cache block ids, row-major; -1 past the used blocks.
  std::vector<int32_t> block_tables;
  int32_t max_blocks_per_seq = 0;
  // Rows of [T] whose logits the caller wants, in the order it wants them
  // (usually the last token of each sequence that samples).
  std::vector<int32_t> logits_rows;
  // [T], or empty for all -1: where >= 0, token t is the id that spec
  // token_from_sample[t] of the backend's last sample_rows_async() drew, read
  // where it was drawn (token_ids[t] is then ignored). Lets a step be queued
  // before the previous step's ids reach the host (Backend::sample_rows_async).
  std::vector<int32_t> token_from_sample;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(context_lens.size()); }
  int32_t max_query_len() const;
  int32_t max_context_len() const;
  // Throws flint::Error when the arrays disagree (sizes, ranges, positions not
  // matching context_lens, block ids outside [0, num_blocks), a
  // token_from_sample entry below -1).
  void validate(int32_t block_size, int32_t num_blocks) const;
};

// Appends one sequence's tokens to a batch under construction.
class BatchBuilder {
 public:
  explicit BatchBuilder(int32_t max_blocks_per_seq);
  // `cached` tokens of this sequence are already in the cache; `tokens` follow.
  // `blocks` must cover cached + tokens.size() positions.
  void add_sequence(const std::vector<int32_t>& tokens, int32_t cached, const std::vector<int32_t>& blocks,
                    bool want_logits_of_last = true, bool want_all_logits = false);
  // One decode token: the id that spec `sample` of the backend's last
  // sample_rows_async() drew (Batch::token_from_sample); its logits wanted.
  void add_sampled_token(int32_t sample, int32_t cached, const std::vector<int32_t>& blocks);
  Batch build();

 private:
  Batch batch_;
};

}  // namespace flint
