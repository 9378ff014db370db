// The R1 reasoning splitter of moert serve: reasoning before "</think>", content after, tags split across
// pieces, the older template's leading "<think>", and no splitting when the template has no reasoning.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve_reasoning.h"

namespace {

struct Split {
  std::string reasoning, content;
};

Split feed(serve::ReasoningSplitter s, const std::vector<std::string>& pieces) {
  Split out;
  for (const std::string& p : pieces) s.feed(p, &out.reasoning, &out.content);
  s.finish(&out.reasoning, &out.content);
  return out;
}

TEST(ServeReasoning, SplitsAtTheClosingTag) {
  const Split a = feed(serve::ReasoningSplitter(true, true), {"Let me think.", "</think>\n\n", "Hello"});
  EXPECT_EQ(a.reasoning, "Let me think.");
  EXPECT_EQ(a.content, "Hello");
}

TEST(ServeReasoning, TagSplitAcrossPieces) {
  const Split a = feed(serve::ReasoningSplitter(true, true), {"abc<", "/thi", "nk", ">", "\n", "\nx<y", "z"});
  EXPECT_EQ(a.reasoning, "abc");
  EXPECT_EQ(a.content, "x<yz");
}

TEST(ServeReasoning, PartialTagThatIsNotOneIsReasoning) {
  const Split a = feed(serve::ReasoningSplitter(true, true), {"a</th", "ought"});
  EXPECT_EQ(a.reasoning, "a</thought");
  EXPECT_EQ(a.content, "");
}

TEST(ServeReasoning, OpeningTagInTheReply) {
  const Split a = feed(serve::ReasoningSplitter(true, false), {"\n<th", "ink>\nhmm</think>ok"});
  EXPECT_EQ(a.reasoning, "\nhmm");
  EXPECT_EQ(a.content, "ok");
  const Split b = feed(serve::ReasoningSplitter(true, false), {"<t", "able>"});
  EXPECT_EQ(b.reasoning, "");
  EXPECT_EQ(b.content, "<table>");
}

TEST(ServeReasoning, UnclosedReasoningStaysReasoning) {
  const Split a = feed(serve::ReasoningSplitter(true, true), {"still </thi"});
  EXPECT_EQ(a.reasoning, "still </thi");
}

TEST(ServeReasoning, DisabledIsAllContent) {
  const Split a = feed(serve::ReasoningSplitter(false, false), {"<think>a</think>b"});
  EXPECT_EQ(a.reasoning, "");
  EXPECT_EQ(a.content, "<think>a</think>b");
}

}  // namespace
