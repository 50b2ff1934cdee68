#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "runtime/kv_blocks.h"

namespace flint {
namespace {

TEST(KvBlockManager, GrowsAndReleases) {
  KvBlockManager m(8, 16);
  EXPECT_TRUE(m.ensure(1, 1));
  EXPECT_EQ(m.blocks(1).size(), 1u);
  EXPECT_TRUE(m.ensure(1, 16));
  EXPECT_EQ(m.blocks(1).size(), 1u);
  EXPECT_TRUE(m.ensure(1, 17));
  EXPECT_EQ(m.blocks(1).size(), 2u);
  EXPECT_FALSE(m.ensure(2, 100));  // 7 blocks: 2 + 7 > 8
  EXPECT_EQ(m.free_blocks(), 6);
  EXPECT_FALSE(m.ensure(2, 16 * 7));  // needs 7 blocks, 6 free: nothing changes
  EXPECT_EQ(m.blocks(2).size(), 0u);
  EXPECT_EQ(m.free_blocks(), 6);
  EXPECT_TRUE(m.ensure(2, 16 * 6));
  EXPECT_EQ(m.free_blocks(), 0);
  std::set<int32_t> all(m.blocks(1).begin(), m.blocks(1).end());
  all.insert(m.blocks(2).begin(), m.blocks(2).end());
  EXPECT_EQ(all.size(), 8u);  // no block given out twice
  m.release(1);
  EXPECT_EQ(m.free_blocks(), 2);
  EXPECT_TRUE(m.blocks(1).empty());
  m.release(1);  // releasing twice is harmless
  EXPECT_EQ(m.free_blocks(), 2);
}

TEST(KvBlockManager, RejectsBadSizes) {
  EXPECT_THROW(KvBlockManager(0, 16), Error);
  EXPECT_THROW(KvBlockManager(4, 0), Error);
}

}  // namespace
}  // namespace flint
