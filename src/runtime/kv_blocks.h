// runtime/kv_blocks.h — who owns which block of the paged KV pool.
//
// Contract: pure bookkeeping, no device memory. A sequence's blocks cover its
// cached positions in order (block i holds positions [i*B, (i+1)*B)). ensure()
// either grows a sequence to the requested token count or, when the pool is
// short, changes nothing and returns false. release() returns every block of a
// sequence at once. Not thread-safe: the engine loop owns it.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace flint {

class KvBlockManager {
 public:
  KvBlockManager(int32_t num_blocks, int32_t block_size);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return num_blocks_; }
  int32_t free_blocks() const { return static_cast<int32_t>(free_.size()); }
  int32_t used_blocks() const { return num_blocks_ - free_blocks(); }
  int32_t blocks_for(int64_t tokens) const { return static_cast<int32_t>((tokens + block_size_ - 1) / block_size_); }

  // Grows sequence `seq` (created on first use) to hold `tokens` positions.
  bool ensure(int64_t seq, int64_t tokens);
  void release(int64_t seq);
  const std::vector<int32_t>& blocks(int64_t seq) const;  // empty for unknown sequences

 private:
  int32_t num_blocks_;
  int32_t block_size_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  std::unordered_map<int64_t, std::vector<int32_t>> owned_;
};

}  // namespace flint
