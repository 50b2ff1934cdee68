#include "runtime/stop_checker.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace flint {
namespace {

struct Fed {
  std::string text;  // everything emitted, flush included unless stopped
  bool stopped = false;
  std::vector<std::string> pieces;  // each push's emit, for checks on holding back
};

Fed feed(const std::vector<std::string>& stops, const std::vector<std::string>& deltas) {
  StopChecker checker(stops);
  Fed run;
  for (const std::string& d : deltas) {
    StopChecker::Result r = checker.push(d);
    run.pieces.push_back(r.emit);
    run.text += r.emit;
    if (r.stopped) {
      run.stopped = true;
      return run;
    }
  }
  run.text += checker.flush();
  return run;
}

std::vector<std::string> bytes(const std::string& text) {
  std::vector<std::string> out;
  for (char c : text) out.emplace_back(1, c);
  return out;
}

TEST(StopChecker, NoStopsPassesEverythingThrough) {
  StopChecker checker({});
  EXPECT_EQ(checker.push("hello").emit, "hello");
  EXPECT_EQ(checker.push("").emit, "");
  EXPECT_FALSE(checker.push(" world").stopped);
  EXPECT_EQ(checker.flush(), "");
}

TEST(StopChecker, RejectsAnEmptyStopString) {
  try {
    StopChecker({"a", ""});
    ADD_FAILURE() << "accepted an empty stop string";
  } catch (const Error& e) {
    EXPECT_EQ(e.context().field, "stop");
  }
}

TEST(StopChecker, StopsInsideOnePushWithoutEmittingTheStopString) {
  const Fed r = feed({"END"}, {"hello END and more"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "hello ");
}

TEST(StopChecker, StopAtTheVeryStart) {
  const Fed r = feed({"\n\n"}, {"\n\nrest"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
}

TEST(StopChecker, HoldsBackAPossibleStartAndReleasesItOnMismatch) {
  StopChecker checker({"</s>"});
  EXPECT_EQ(checker.push("a <").emit, "a ");
  EXPECT_EQ(checker.push("/").emit, "");
  EXPECT_EQ(checker.push("b>").emit, "</b>");  // "</b" is no prefix of "</s>"
  EXPECT_EQ(checker.push("</").emit, "");
  EXPECT_EQ(checker.flush(), "</");  // end of generation: nothing is lost
  EXPECT_EQ(checker.flush(), "");
}

TEST(StopChecker, StopStringSplitAcrossPushes) {
  const Fed r = feed({"STOP"}, {"abc S", "T", "", "O", "Pxyz"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "abc ");
  EXPECT_EQ(r.pieces, (std::vector<std::string>{"abc ", "", "", "", ""}));
}

TEST(StopChecker, OverlappingPrefixes) {
  // "ab" completes before "abc" could: the stop is at "ab", after one "a".
  EXPECT_EQ(feed({"ab", "abc"}, {"aab"}).text, "a");
  EXPECT_EQ(feed({"abc", "ab"}, bytes("aab")).text, "a");
  // A stop string whose first char repeats: "aab" in "aaab" starts at 1.
  const Fed r = feed({"aab"}, bytes("xaaab"));
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "xa");
  // The held "ab" turns out not to start the stop; a later "ab" does.
  EXPECT_EQ(feed({"abac"}, {"xab", "ab", "ac!"}).text, "xab");
}

TEST(StopChecker, MultipleStopsTheFirstToCompleteWins) {
  EXPECT_EQ(feed({"world", "lo"}, {"hello world"}).text, "hel");
  // "bcd" completes before "abcdef" (which started earlier) could.
  EXPECT_EQ(feed({"abcdef", "bcd"}, bytes("xabcdef")).text, "xa");
  EXPECT_EQ(feed({"abcdef", "bcd"}, {"xabcdef"}).text, "xa");  // same in one push
  // Two completing at the same byte: the longer (earlier) one cuts more.
  EXPECT_EQ(feed({"cd", "bcd"}, {"abcd"}).text, "a");
}

TEST(StopChecker, OutputDoesNotDependOnHowTheTextIsSplit) {
  const std::vector<std::string> stops = {"<|eot|>", "\n\nUser:", "ot|", "zz"};
  const std::vector<std::string> texts = {
      "plain text with no stop at all", "a <|eo then <|eot|> tail", "line\n\nUser: hi",
      "partial <|eot", "z", "fizzbuzz", "<|eo\n\nUse", "x\n\nUser",
  };
  for (const std::string& text : texts) {
    const Fed whole = feed(stops, {text});
    const Fed by_byte = feed(stops, bytes(text));
    // Every split into two pieces too.
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      const Fed two = feed(stops, {text.substr(0, cut), text.substr(cut)});
      EXPECT_EQ(two.text, whole.text) << text << " cut at " << cut;
      EXPECT_EQ(two.stopped, whole.stopped) << text << " cut at " << cut;
    }
    EXPECT_EQ(by_byte.text, whole.text) << text;
    EXPECT_EQ(by_byte.stopped, whole.stopped) << text;
    if (!whole.stopped) {
      EXPECT_EQ(whole.text, text);
    }
  }
}

TEST(StopChecker, Utf8StopStrings) {
  // "。" is E3 80 82; "終わり" is three 3-byte characters.
  const std::string stop = "終わり";
  const Fed r = feed({stop, "。"}, {"これで", "終", "わ", "り", "です"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "これで");
  EXPECT_EQ(feed({"。"}, {"文です。次"}).text, "文です");
  // A byte-wise split of a multibyte stop string across pushes.
  const std::string text = "héllo wörld";
  const Fed split = feed({"wö"}, bytes(text));
  EXPECT_EQ(split.text, "héllo ");
  // Pieces emitted while a multibyte stop is pending stay whole characters:
  // "終" shares its first two bytes with "絵" (E7 B5 82 vs E7 B5 B5).
  StopChecker checker({stop});
  EXPECT_EQ(checker.push("絵").emit, "絵");
  EXPECT_EQ(checker.push("終わ").emit, "");
  EXPECT_EQ(checker.flush(), "終わ");
}

TEST(StopChecker, NothingAfterAStop) {
  StopChecker checker({"."});
  StopChecker::Result r = checker.push("one. two");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "one");
  EXPECT_TRUE(checker.stopped());
  r = checker.push("more.");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emit, "");
  EXPECT_EQ(checker.flush(), "");
}

TEST(StopChecker, FlushReturnsTheHeldTailAtTheEnd) {
  StopChecker checker({"###", "END"});
  EXPECT_EQ(checker.push("x ##").emit, "x ");
  EXPECT_EQ(checker.push("#").emit, "");  // "###" completes: stopped
  EXPECT_TRUE(checker.stopped());

  StopChecker other({"###", "END"});
  EXPECT_EQ(other.push("x #").emit, "x ");
  EXPECT_EQ(other.push("E").emit, "#");  // "#E" is no prefix, "E" is
  EXPECT_EQ(other.push("N").emit, "");
  EXPECT_FALSE(other.stopped());
  EXPECT_EQ(other.flush(), "EN");
}

}  // namespace
}  // namespace flint
