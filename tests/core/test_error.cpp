#include "core/error.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace flint {
namespace {

TEST(Error, RendersTheContextPartsThatAreSet) {
  const struct {
    ErrorContext context;
    const char* what;
  } cases[] = {
      {{}, "bad thing"},
      {{.file = "model.safetensors"}, "model.safetensors: bad thing"},
      {{.tensor = "lm_head.weight"}, "tensor 'lm_head.weight': bad thing"},
      {{.field = "rope_theta"}, "field 'rope_theta': bad thing"},
      {{.file = "config.json", .field = "rope_scaling.factor"}, "config.json: field 'rope_scaling.factor': bad thing"},
      {{.file = "m.safetensors", .tensor = "model.layers.3.mlp.up_proj.weight", .field = "shape"},
       "m.safetensors: tensor 'model.layers.3.mlp.up_proj.weight': field 'shape': bad thing"},
  };
  for (const auto& c : cases) {
    const Error e("bad thing", c.context);
    EXPECT_EQ(std::string(e.what()), c.what);
    EXPECT_EQ(e.message(), "bad thing");
    EXPECT_EQ(e.context().file, c.context.file);
    EXPECT_EQ(e.context().tensor, c.context.tensor);
    EXPECT_EQ(e.context().field, c.context.field);
  }
}

TEST(Error, IsARuntimeError) {
  try {
    throw Error("boom", {.file = "x.bin"});
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "x.bin: boom");
  }
}

TEST(Error, WithFillsOnlyEmptyParts) {
  const Error inner("expected 2 dims", {.tensor = "w"});
  const Error outer = inner.with_file("a.safetensors").with_tensor("ignored").with_field("shape");
  EXPECT_EQ(std::string(outer.what()), "a.safetensors: tensor 'w': field 'shape': expected 2 dims");
  EXPECT_EQ(outer.message(), "expected 2 dims");
  // The original is unchanged: with_* returns a copy.
  EXPECT_EQ(std::string(inner.what()), "tensor 'w': expected 2 dims");

  // The innermost file wins: an index file's error names the shard it read.
  const Error shard("truncated", {.file = "model-00002-of-00004.safetensors"});
  EXPECT_EQ(std::string(shard.with_file("model.safetensors.index.json").what()),
            "model-00002-of-00004.safetensors: truncated");
  const Error field("not a number", {.field = "inner"});
  EXPECT_EQ(field.with_field("outer").context().field, "inner");
  EXPECT_EQ(field.with_tensor("t").context().tensor, "t");
}

TEST(Error, RethrownWithContextByAnOuterLayer) {
  auto parse = [] { fail({.field = "vocab_size"}, "expected an integer, got {}", "\"abc\""); };
  try {
    try {
      parse();
    } catch (const Error& e) {
      throw e.with_file("config.json");
    }
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "config.json: field 'vocab_size': expected an integer, got \"abc\"");
  }
}

TEST(Fail, FormatsTheMessage) {
  try {
    fail("expected shape {} got {}", "[2, 3]", 7);
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "expected shape [2, 3] got 7");
    EXPECT_EQ(std::string(e.what()), "expected shape [2, 3] got 7");
    EXPECT_TRUE(e.context().file.empty());
  }
  try {
    fail({.file = "f", .tensor = "t"}, "{}+{}={}", 1, 2, 3);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "f: tensor 't': 1+2=3");
  }
}

TEST(Check, ThrowsOnlyWhenTheConditionFails) {
  int evaluated = 0;
  EXPECT_NO_THROW(FLINT_CHECK(++evaluated == 1, "unused {}", 1));
  EXPECT_EQ(evaluated, 1);  // the condition is evaluated exactly once
  try {
    FLINT_CHECK(evaluated > 5, "evaluated is {}", evaluated);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "evaluated is 1");
  }
  try {
    FLINT_CHECK(false, {.tensor = "embed"}, "rows {}", 3);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "tensor 'embed': rows 3");
  }
}

TEST(Assert, SaysItIsAnInternalError) {
  try {
    FLINT_ASSERT(1 + 1 == 3);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("internal error: 1 + 1 == 3"), std::string::npos) << what;
    EXPECT_NE(what.find("test_error.cpp"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace flint
