#include <gtest/gtest.h>

#include "core/error.h"
#include "ops/batch.h"

namespace flint {
namespace {

TEST(Batch, BuilderPacksSequences) {
  BatchBuilder b(3);
  b.add_sequence({5, 6, 7}, 0, {4});               // a prompt
  b.add_sequence({9}, 20, {0, 2});                 // a decode token at position 20
  b.add_sequence({1, 2}, 16, {3, 1}, false, true);  // a chunk, all logits
  const Batch batch = b.build();
  EXPECT_EQ(batch.token_ids, (std::vector<int32_t>{5, 6, 7, 9, 1, 2}));
  EXPECT_EQ(batch.positions, (std::vector<int32_t>{0, 1, 2, 20, 16, 17}));
  EXPECT_EQ(batch.query_starts, (std::vector<int32_t>{0, 3, 4, 6}));
  EXPECT_EQ(batch.context_lens, (std::vector<int32_t>{3, 21, 18}));
  EXPECT_EQ(batch.block_tables, (std::vector<int32_t>{4, -1, -1, 0, 2, -1, 3, 1, -1}));
  EXPECT_EQ(batch.logits_rows, (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(batch.max_query_len(), 3);
  EXPECT_EQ(batch.max_context_len(), 21);
  EXPECT_NO_THROW(batch.validate(16, 5));
}

TEST(Batch, ValidateCatchesInconsistencies) {
  auto good = [] {
    BatchBuilder b(2);
    b.add_sequence({1, 2, 3}, 14, {0, 1});
    return b.build();
  };
  EXPECT_NO_THROW(good().validate(16, 2));
  EXPECT_THROW(good().validate(16, 1), Error);  // block 1 outside the pool
  EXPECT_THROW(good().validate(8, 2), Error);   // 17 positions need 3 blocks of 8
  Batch b = good();
  b.positions[1] = 99;
  EXPECT_THROW(b.validate(16, 2), Error);
  b = good();
  b.logits_rows = {3};
  EXPECT_THROW(b.validate(16, 2), Error);
  b = good();
  b.query_starts.back() = 2;
  EXPECT_THROW(b.validate(16, 2), Error);
}

}  // namespace
}  // namespace flint
