#include "tokenizer/bpe.h"

#include <algorithm>
#include <queue>

namespace flint {
namespace {

constexpr uint64_t kEmpty = ~uint64_t{0};

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser: spreads consecutive ids
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Candidate merge of the symbol at `pos` with its right neighbour.
struct Candidate {
  uint32_t rank;
  int32_t pos;
  TokenId result;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct Symbol {
  TokenId id;  // -1 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

}  // namespace

void BpeModel::MergeTable::reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  keys.assign(capacity, kEmpty);
  values.assign(capacity, Merge{});
  mask = capacity - 1;
}

bool BpeModel::MergeTable::insert(TokenId left, TokenId right, Merge m) {
  const uint64_t key = pair_key(left, right);
  for (uint64_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
    if (keys[slot] == key) return false;
    if (keys[slot] == kEmpty) {
      keys[slot] = key;
      values[slot] = m;
      return true;
    }
  }
}

const BpeModel::Merge* BpeModel::MergeTable::find(TokenId left, TokenId right) const {
  if (keys.empty()) return nullptr;
  const uint64_t key = pair_key(left, right);
  for (uint64_t slot = mix(key) & mask;; slot = (slot + 1) & mask) {
    if (keys[slot] == key) return &values[slot];
    if (keys[slot] == kEmpty) return nullptr;
  }
}

BpeModel::BpeModel(std::vector<std::string> vocab, std::vector<bool> present, bool ignore_merges,
                   const ErrorContext& where)
    : vocab_(std::move(vocab)), present_(std::move(present)), ignore_merges_(ignore_merges) {
  FLINT_ASSERT(vocab_.size() == present_.size());
  size_t capacity = 16;
  while (capacity < vocab_.size() * 2) capacity *= 2;
  ids_.slots.assign(capacity, kEmpty);
  ids_.mask = capacity - 1;
  for (size_t id = 0; id < vocab_.size(); ++id) {
    if (!present_[id]) continue;
    FLINT_CHECK(!vocab_[id].empty(), where, "token {} is empty", id);
    const TokenId other = insert_bytes(static_cast<TokenId>(id));
    FLINT_CHECK(other < 0, where, "tokens {} and {} have the same bytes", other, id);
  }
  for (int b = 0; b < 256; ++b) {
    const auto id = find(std::string(1, static_cast<char>(b)));
    FLINT_CHECK(id.has_value(), where, "the vocabulary has no token for byte 0x{:02X}", b);
    byte_ids_[b] = *id;
  }
}

BpeModel BpeModel::from_merges(std::vector<std::string> vocab, std::vector<bool> present,
                               const std::vector<std::pair<std::string, std::string>>& merges,
                               bool ignore_merges, const ErrorContext& where) {
  BpeModel model(std::move(vocab), std::move(present), ignore_merges, where);
  model.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left_bytes, right_bytes] = merges[rank];
    const auto left = model.find(left_bytes), right = model.find(right_bytes);
    FLINT_CHECK(left && right, where, "merge {} names a token that is not in the vocabulary ('{}')", rank,
                left ? right_bytes : left_bytes);
    const auto result = model.find(left_bytes + right_bytes);
    FLINT_CHECK(result.has_value(), where, "merge {} makes a token that is not in the vocabulary", rank);
    // A repeated pair keeps its first (best) rank, as HF's merge map does.
    if (model.merges_.insert(*left, *right, Merge{static_cast<uint32_t>(rank), *result})) ++model.merge_count_;
  }
  return model;
}

BpeModel BpeModel::from_ranks(std::vector<std::string> vocab, const ErrorContext& where) {
  const size_t n = vocab.size();
  BpeModel model(std::move(vocab), std::vector<bool>(n, true), /*ignore_merges=*/true, where);
  // Every split of a token into two tokens is a merge ranked by the token:
  // tiktoken merges the adjacent pair whose concatenation has the lowest rank.
  std::vector<std::pair<uint64_t, Merge>> found;
  found.reserve(n * 4);
  for (size_t id = 0; id < n; ++id) {
    const std::string_view token = model.vocab_[id];
    for (size_t cut = 1; cut < token.size(); ++cut) {
      const auto left = model.find(token.substr(0, cut));
      if (!left) continue;
      const auto right = model.find(token.substr(cut));
      if (!right) continue;
      found.push_back({pair_key(*left, *right), Merge{static_cast<uint32_t>(id), static_cast<TokenId>(id)}});
    }
  }
  model.merges_.reserve(found.size());
  for (const auto& [key, merge] : found)
    if (model.merges_.insert(static_cast<TokenId>(key >> 32), static_cast<TokenId>(key & 0xFFFFFFFFu), merge))
      ++model.merge_count_;
  return model;
}

namespace {
uint64_t hash_bytes(std::string_view s) {  // FNV-1a, then mixed: short keys dominate
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return mix(h);
}
}  // namespace

TokenId BpeModel::insert_bytes(TokenId id) {
  const std::string& bytes = vocab_[static_cast<size_t>(id)];
  const uint64_t h = hash_bytes(bytes);
  const uint64_t tag = h >> 32;
  for (uint64_t slot = h & ids_.mask;; slot = (slot + 1) & ids_.mask) {
    const uint64_t v = ids_.slots[slot];
    if (v == kEmpty) {
      ids_.slots[slot] = (tag << 32) | static_cast<uint32_t>(id);
      return -1;
    }
    const auto other = static_cast<TokenId>(v & 0xFFFFFFFFu);
    if ((v >> 32) == tag && vocab_[static_cast<size_t>(other)] == bytes) return other;
  }
}

std::optional<TokenId> BpeModel::find(std::string_view bytes) const {
  const uint64_t h = hash_bytes(bytes);
  const uint64_t tag = h >> 32;
  for (uint64_t slot = h & ids_.mask;; slot = (slot + 1) & ids_.mask) {
    const uint64_t v = ids_.slots[slot];
    if (v == kEmpty) return std::nullopt;
    const auto id = static_cast<TokenId>(v & 0xFFFFFFFFu);
    if ((v >> 32) == tag && vocab_[static_cast<size_t>(id)] == bytes) return id;
  }
}

void BpeModel::encode_piece(std::string_view piece, std::vector<TokenId>& out) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (ignore_merges_) {
    if (const auto id = find(piece)) {
      out.push_back(*id);
      return;
    }
  }
  // Symbols in a doubly linked list over the bytes; candidates in a min-heap
  // keyed by (rank, position). Entries go stale when a neighbour merges; they
  // are recognised on pop by re-checking the pair, so each merge costs
  // O(log n) and the whole piece O(n log n).
  const auto n = static_cast<int32_t>(piece.size());
  std::vector<Symbol> symbols(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i)
    symbols[static_cast<size_t>(i)] = {byte_ids_[static_cast<unsigned char>(piece[static_cast<size_t>(i)])], i - 1,
                                       i + 1 < n ? i + 1 : -1};
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(static_cast<size_t>(n));
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap(std::greater<>{},
                                                                              std::move(heap_storage));
  auto consider = [&](int32_t pos) {
    const int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    if (const Merge* m = merges_.find(symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id))
      heap.push({m->rank, pos, m->result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[static_cast<size_t>(c.pos)];
    if (left.id < 0 || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    const Merge* m = merges_.find(left.id, right.id);
    if (!m || m->result != c.result) continue;  // stale: a neighbour changed
    left.id = c.result;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = c.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) out.push_back(symbols[static_cast<size_t>(i)].id);
}

}  // namespace flint
