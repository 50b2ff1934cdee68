#include "runtime/kv_blocks.h"

#include "core/error.h"

namespace flint {

KvBlockManager::KvBlockManager(int32_t num_blocks, int32_t block_size)
    : num_blocks_(num_blocks), block_size_(block_size) {
  FLINT_CHECK(num_blocks > 0, "KV cache needs at least one block, got {}", num_blocks);
  FLINT_CHECK(block_size > 0, "KV block size must be positive, got {}", block_size);
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

bool KvBlockManager::ensure(int64_t seq, int64_t tokens) {
  std::vector<int32_t>& mine = owned_[seq];
  const int32_t need = blocks_for(tokens) - static_cast<int32_t>(mine.size());
  if (need <= 0) return true;
  if (need > free_blocks()) return false;
  for (int32_t i = 0; i < need; ++i) {
    mine.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvBlockManager::release(int64_t seq) {
  auto it = owned_.find(seq);
  if (it == owned_.end()) return;
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) free_.push_back(*b);
  owned_.erase(it);
}

const std::vector<int32_t>& KvBlockManager::blocks(int64_t seq) const {
  static const std::vector<int32_t> none;
  auto it = owned_.find(seq);
  return it == owned_.end() ? none : it->second;
}

}  // namespace flint
