#include "ops/batch.h"

#include <algorithm>

#include "core/error.h"

namespace flint {

int32_t Batch::max_query_len() const {
  int32_t m = 0;
  for (size_t s = 0; s + 1 < query_starts.size(); ++s) m = std::max(m, query_starts[s + 1] - query_starts[s]);
  return m;
}

int32_t Batch::max_context_len() const {
  int32_t m = 0;
  for (int32_t c : context_lens) m = std::max(m, c);
  return m;
}

void Batch::validate(int32_t block_size, int32_t num_blocks) const {
  const auto T = static_cast<size_t>(num_tokens());
  const auto S = static_cast<size_t>(num_seqs());
  FLINT_CHECK(positions.size() == T, "batch: {} positions for {} tokens", positions.size(), T);
  FLINT_CHECK(query_starts.size() == S + 1, "batch: {} query_starts for {} sequences", query_starts.size(), S);
  FLINT_CHECK(query_starts.front() == 0 && static_cast<size_t>(query_starts.back()) == T,
              "batch: query_starts must run from 0 to {}", T);
  FLINT_CHECK(max_blocks_per_seq > 0 || S == 0, "batch: max_blocks_per_seq must be positive");
  FLINT_CHECK(block_tables.size() == S * static_cast<size_t>(max_blocks_per_seq),
              "batch: block table has {} entries, expected {} x {}", block_tables.size(), S, max_blocks_per_seq);
  for (size_t s = 0; s < S; ++s) {
    const int32_t begin = query_starts[s], end = query_starts[s + 1];
    FLINT_CHECK(begin <= end, "batch: sequence {} has negative length", s);
    const int32_t n = end - begin;
    FLINT_CHECK(context_lens[s] >= n, "batch: sequence {} has context {} < {} new tokens", s, context_lens[s], n);
    const int32_t first = context_lens[s] - n;
    for (int32_t i = 0; i < n; ++i)
      FLINT_CHECK(positions[static_cast<size_t>(begin + i)] == first + i,
                  "batch: sequence {} token {} has position {}, expected {}", s, i,
                  positions[static_cast<size_t>(begin + i)], first + i);
    const int32_t blocks_needed = (context_lens[s] + block_size - 1) / block_size;
    FLINT_CHECK(blocks_needed <= max_blocks_per_seq, "batch: sequence {} needs {} blocks, table holds {}", s,
                blocks_needed, max_blocks_per_seq);
    for (int32_t b = 0; b < blocks_needed; ++b) {
      const int32_t id = block_tables[s * static_cast<size_t>(max_blocks_per_seq) + static_cast<size_t>(b)];
      FLINT_CHECK(id >= 0 && id < num_blocks, "batch: sequence {} block {} is {}, outside [0, {})", s, b, id,
                  num_blocks);
    }
  }
  for (int32_t r : logits_rows)
    FLINT_CHECK(r >= 0 && static_cast<size_t>(r) < T, "batch: logits row {} outside [0, {})", r, T);
  FLINT_CHECK(token_from_sample.empty() || token_from_sample.size() == T,
              "batch: {} token_from_sample entries for {} tokens", token_from_sample.size(), T);
  for (int32_t from : token_from_sample)
    FLINT_CHECK(from >= -1, "batch: token_from_sample entry {} (must be -1 or a sample's index)", from);
}

BatchBuilder::BatchBuilder(int32_t max_blocks_per_seq) {
  batch_.max_blocks_per_seq = max_blocks_per_seq;
  batch_.query_starts.push_back(0);
}

void BatchBuilder::add_sequence(const std::vector<int32_t>& tokens, int32_t cached, const std::vector<int32_t>& blocks,
                                bool want_logits_of_last, bool want_all_logits) {
  FLINT_CHECK(static_cast<int32_t>(blocks.size()) <= batch_.max_blocks_per_seq,
              "batch: {} blocks exceed the table width {}", blocks.size(), batch_.max_blocks_per_seq);
  const auto first_row = static_cast<int32_t>(batch_.token_ids.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch_.token_ids.push_back(tokens[i]);
    if (!batch_.token_from_sample.empty()) batch_.token_from_sample.push_back(-1);
    batch_.positions.push_back(cached + static_cast<int32_t>(i));
    if (want_all_logits) batch_.logits_rows.push_back(first_row + static_cast<int32_t>(i));
  }
  if (want_logits_of_last && !want_all_logits && !tokens.empty())
    batch_.logits_rows.push_back(first_row + static_cast<int32_t>(tokens.size()) - 1);
  batch_.query_starts.push_back(static_cast<int32_t>(batch_.token_ids.size()));
  batch_.context_lens.push_back(cached + static_cast<int32_t>(tokens.size()));
  for (int32_t b = 0; b < batch_.max_blocks_per_seq; ++b)
    batch_.block_tables.push_back(b < static_cast<int32_t>(blocks.size()) ? blocks[static_cast<size_t>(b)] : -1);
}

void BatchBuilder::add_sampled_token(int32_t sample, int32_t cached, const std::vector<int32_t>& blocks) {
  FLINT_CHECK(sample >= 0, "batch: sample index {} is negative", sample);
  add_sequence({0}, cached, blocks);  // id 0 holds the place: the backend reads the drawn one
  // Until the first sampled token, token_from_sample stays empty (all -1).
  if (batch_.token_from_sample.empty()) batch_.token_from_sample.assign(batch_.token_ids.size(), -1);
  batch_.token_from_sample.back() = sample;
}

Batch BatchBuilder::build() { return std::move(batch_); }

}  // namespace flint
