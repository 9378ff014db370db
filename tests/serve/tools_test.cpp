// moert serve's tool-call reader: the DeepSeek-V3/R1, DeepSeek-V3.1 and Kimi-K2 syntaxes turned into calls,
// malformed sections refused (the server then returns their text), and the splitter that keeps the text
// before a section as content and holds what follows it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve_tools.h"

namespace {

using serve::ToolCall;

std::vector<ToolCall> parse(const serve::ToolMarkers& m, const std::string& s, bool ok = true) {
  std::vector<ToolCall> calls;
  EXPECT_EQ(serve::parse_tool_calls(m, s, &calls), ok) << s;
  return calls;
}

const std::string kV3Two =
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": "
    "\"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n``"
    "`"
    "<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

TEST(ServeTools, DeepSeekV3CallsInCodeFences) {
  const auto calls = parse(serve::deepseek_tool_markers(), kV3Two);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_TRUE(calls[0].id.empty()) << "the server makes DeepSeek's ids";
  EXPECT_EQ(calls[1].name, "get_time");
  EXPECT_EQ(calls[1].arguments, "{}");
}

TEST(ServeTools, DeepSeekV3SingleCallWithoutTheSectionEnd) {
  // DeepSeek-V3's own chat template writes one call without <｜tool▁calls▁end｜>; a reply may end so too.
  const auto calls = parse(serve::deepseek_tool_markers(),
                           "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n"
                           "{\"a\": [1, 2]}\n```<｜tool▁call▁end｜>");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "f");
  EXPECT_EQ(calls[0].arguments, R"({"a":[1,2]})");
}

TEST(ServeTools, DeepSeekV31NameThenArguments) {
  const auto calls = parse(serve::deepseek_tool_markers(),
                           "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"moert\"}"
                           "<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "search");
  EXPECT_EQ(calls[0].arguments, R"({"q":"moert"})");
}

TEST(ServeTools, KimiK2CallsCarryTheirIds) {
  const auto calls = parse(serve::kimi_tool_markers(),
                           "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
                           "<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|>"
                           "<|tool_call_begin|>functions.get_weather:1<|tool_call_argument_begin|>{\"city\": "
                           "\"Rome\"}<|tool_call_end|><|tool_calls_section_end|>");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].id, "functions.get_weather:0");
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(calls[1].id, "functions.get_weather:1");
  EXPECT_EQ(calls[1].arguments, R"({"city":"Rome"})");
}

TEST(ServeTools, MalformedSectionsAreRefused) {
  const auto& m = serve::deepseek_tool_markers();
  parse(m, "no section at all", false);
  parse(m, "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>", false);  // no call
  parse(m, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": ", false);
  parse(m, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>[1, 2]<｜tool▁call▁end｜>", false);
  parse(m, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜><｜tool▁sep｜>{}<｜tool▁call▁end｜>",
        false);                                                                           // no name
  parse(m, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f {}<｜tool▁call▁end｜>", false);  // no separator
  parse(m, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{not json}<｜tool▁call▁end｜>", false);
}

TEST(ServeTools, SplitterKeepsTheTextBeforeTheSectionAndHoldsTheRest) {
  const int32_t kBegin = 900, kEos = 1;
  serve::ToolCallSplitter s(&serve::deepseek_tool_markers(), kBegin);
  std::string content;
  content += s.feed(5, "Let me check. ", false);
  EXPECT_FALSE(s.in_section());
  // A tokenizer that keeps the marker as text puts it in the piece, maybe after held-back text.
  content += s.feed(kBegin, "ok<｜tool▁calls▁begin｜>", false);
  EXPECT_TRUE(s.in_section());
  content += s.feed(7, "<｜tool▁call▁begin｜>", false);
  content += s.feed(8, "function", false);
  content += s.feed(kEos, "", true);
  EXPECT_EQ(content, "Let me check. ok");
  EXPECT_EQ(s.section_tokens(), (std::vector<int32_t>{kBegin, 7, 8})) << "the EOS token is not the section's";
  // One that drops special tokens from the text gives an empty piece: nothing is lost either way.
  serve::ToolCallSplitter t(&serve::deepseek_tool_markers(), kBegin);
  EXPECT_EQ(t.feed(kBegin, "", false), "");
  EXPECT_TRUE(t.in_section());
  // Off: everything is content, the marker token included.
  serve::ToolCallSplitter off(nullptr, kBegin);
  EXPECT_EQ(off.feed(kBegin, "<｜tool▁calls▁begin｜>", false), "<｜tool▁calls▁begin｜>");
  EXPECT_FALSE(off.in_section());
}

}  // namespace
