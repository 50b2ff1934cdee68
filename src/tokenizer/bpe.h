// tokenizer/bpe.h — the byte-pair-encoding model of byte-level BPE tokenizers:
// a vocabulary of byte strings plus ranked merges, applied to one pre-token.
//
// Contract:
// - Tokens are raw byte strings (the GPT-2 byte-level spelling is undone at
//   load), so a pre-token is merged from its bytes directly.
// - encode_piece() gives the ids HF tokenizers' BPE model gives for the same
//   pre-token (lowest merge rank first, leftmost on ties; with ignore_merges a
//   pre-token that is a whole vocab entry is that one token) in O(n log n) for
//   an n-byte pre-token, whatever n is.
// - from_ranks() builds the same model from tiktoken ranks: merging a pair is
//   ranked by the rank of the concatenated token, which is tiktoken's rule.
// - Every byte 0..255 must have a token (checked at construction), so
//   encoding never fails. Immutable after construction: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace flint {

class BpeModel {
 public:
  // vocab[id] = bytes of token id; `present[id]` false marks a hole (an id the
  // vocabulary does not use). merges: (left bytes, right bytes) in rank order.
  static BpeModel from_merges(std::vector<std::string> vocab, std::vector<bool> present,
                              const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
                              const ErrorContext& where);
  // tiktoken: vocab[rank] = bytes, every rank present.
  static BpeModel from_ranks(std::vector<std::string> vocab, const ErrorContext& where);

  // Appends the ids of one pre-token (raw bytes) to `out`.
  void encode_piece(std::string_view piece, std::vector<TokenId>& out) const;

  std::optional<TokenId> find(std::string_view bytes) const;
  int32_t size() const { return static_cast<int32_t>(vocab_.size()); }
  bool contains(TokenId id) const { return id >= 0 && id < size() && present_[static_cast<size_t>(id)]; }
  const std::string& bytes(TokenId id) const { return vocab_[static_cast<size_t>(id)]; }
  size_t num_merges() const { return merge_count_; }

 private:
  struct Merge {
    uint32_t rank;
    TokenId result;
  };
  // Open-addressing map (left, right) -> merge: the hot lookup of the merge loop.
  struct MergeTable {
    std::vector<uint64_t> keys;  // kEmpty where unused
    std::vector<Merge> values;
    uint64_t mask = 0;
    void reserve(size_t n);
    bool insert(TokenId left, TokenId right, Merge m);  // false if the pair exists
    const Merge* find(TokenId left, TokenId right) const;
  };
  // Open-addressing map bytes -> id (slot = hash tag << 32 | id): the lookup
  // of every pre-token, kept flat so it costs about one cache miss.
  struct BytesIndex {
    std::vector<uint64_t> slots;
    uint64_t mask = 0;
  };
  TokenId insert_bytes(TokenId id);  // returns the id already holding these bytes, or -1

  BpeModel(std::vector<std::string> vocab, std::vector<bool> present, bool ignore_merges, const ErrorContext& where);

  std::vector<std::string> vocab_;
  std::vector<bool> present_;
  BytesIndex ids_;
  TokenId byte_ids_[256] = {};
  MergeTable merges_;
  size_t merge_count_ = 0;
  bool ignore_merges_ = false;
};

}  // namespace flint
