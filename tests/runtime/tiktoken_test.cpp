// tiktoken tokenizers as Moonlight and Kimi-K2 ship them (tiktoken.model + tokenizer_config.json naming
// Moonshot's TikTokenTokenizer): every case of tests/data/tokenizer-tiktoken, made by tiktoken itself and
// @huggingface/jinja (make_cases.mjs), and the loader's errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tokenizer/chat_template_moonshot.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

using moert::Error;
using moert::ErrorCode;
using moert::Tokenizer;
using nlohmann::json;

namespace {

const std::string kDir = std::string(MOERT_TEST_DATA) + "/tokenizer-tiktoken";
constexpr int32_t kBase = 24000;  // tiktoken.model's rank count: the first special id

const Tokenizer& tk() {
  static const Tokenizer t = Tokenizer::load(kDir + "/tiktoken.model", kDir + "/tokenizer_config.json");
  return t;
}

std::string config_text() {
  return slurp(kDir + "/tokenizer_config.json");
}

ErrorCode load_error(const std::string& model, const std::string& config, std::string* what = nullptr) {
  try {
    Tokenizer::from_tiktoken(model, config);
  } catch (const Error& e) {
    if (what) *what = e.what();
    return e.code();
  }
  return static_cast<ErrorCode>(0);  // loaded
}

}  // namespace

TEST(Tiktoken, EncodesEveryCorpusCaseAsTiktoken) {
  const auto rows = read_jsonl(kDir + "/encode_cases.jsonl");
  ASSERT_GT(rows.size(), 1300u);
  int checked_plain = 0;
  for (const json& r : rows) {
    const std::string text = r["text"];
    const auto ids = tk().encode(text, false, true);
    ASSERT_EQ(ids, ids_of(r["ids"])) << text.substr(0, 200);
    if (r.contains("ids_no_special")) {
      ASSERT_EQ(tk().encode(text, false, false), ids_of(r["ids_no_special"])) << text.substr(0, 200);
      ++checked_plain;
    }
    const std::string want = r.contains("decoded") ? r["decoded"].get<std::string>() : text;
    ASSERT_EQ(tk().decode(ids, false), want) << text.substr(0, 200);
  }
  EXPECT_GT(checked_plain, 0);  // the cases with special tokens written in the text
}

TEST(Tiktoken, SlicesLongTextsAndRunsAsTheClassDoes) {
  for (const json& r : read_jsonl(kDir + "/chunk_cases.jsonl")) {
    const std::string text = r["text"];
    std::vector<std::string_view> got;
    moert::tok::split_tiktoken_chunks(text, r["max_chars"], r["max_run"], &got);
    std::vector<std::string> want = r["chunks"];
    ASSERT_EQ(std::vector<std::string>(got.begin(), got.end()), want) << text;
  }
}

TEST(Tiktoken, SpecialTokensAndInfo) {
  const Tokenizer& t = tk();
  EXPECT_EQ(t.vocab_size(), kBase + 256);
  EXPECT_EQ(t.bos_id(), kBase);
  EXPECT_EQ(t.eos_id(), kBase + 1);
  EXPECT_EQ(t.token_to_id("<|im_end|>"), kBase + 2);
  EXPECT_EQ(t.token_to_id("<|reserved_token_24005|>"), kBase + 5);  // unnamed: the class's default name
  EXPECT_TRUE(t.is_special(kBase + 17));
  EXPECT_FALSE(t.is_special(100));
  // Ranks read as the ByteLevel alphabet, as a converted tokenizer.json would spell them.
  EXPECT_EQ(t.encode(" the", false, true), std::vector<int32_t>{279});  // cl100k_base's rank
  EXPECT_EQ(t.id_to_token(279), "\xC4\xA0the");
  EXPECT_EQ(t.decode({kBase + 2, 15339}, true), t.decode({15339}, false));  // skip_special drops <|im_end|>
}

TEST(Tiktoken, ChatTemplateAsJinjaRendersIt) {
  const auto rows = read_jsonl(kDir + "/chat_cases.jsonl");
  ASSERT_EQ(rows.size(), 10u);
  for (const json& r : rows) {
    const std::string rendered = tk().apply_chat_template(r["messages"].dump(), r["add_generation_prompt"]);
    ASSERT_EQ(rendered, r["rendered"].get<std::string>()) << r["messages"].dump();
    ASSERT_EQ(tk().encode(rendered, false, true), ids_of(r["ids"])) << rendered;
  }
  EXPECT_THROW(tk().apply_chat_template(R"([{"role": "user", "content": null}])", true), Error);
  EXPECT_THROW(tk().apply_chat_template(R"([{"content": "x"}])", true), Error);
}

TEST(Tiktoken, MoonshotTemplateRecognisedByStructure) {
  const json cfg = json::parse(config_text());
  const std::string one_line = cfg["chat_template"];
  const auto a = moert::tok::recognise_moonshot_template(one_line);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->default_system, "You are a helpful assistant");
  EXPECT_TRUE(a->generation_prompt);
  // The generator checked with jinja that this re-indented copy renders the same.
  const auto b = moert::tok::recognise_moonshot_template(slurp(kDir + "/chat_template_pretty.jinja"));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->default_system, a->default_system);
  // Another default system prompt is read from the template; without the block there is none.
  std::string other = one_line;
  other.replace(other.find("You are a helpful assistant"), 27, "Be brief.");
  EXPECT_EQ(moert::tok::recognise_moonshot_template(other)->default_system, "Be brief.");
  std::string no_default = one_line;
  const size_t s = no_default.find("{%- if loop.first"), e = no_default.find("{%- endif -%}", s) + 13;
  no_default.erase(s, e - s);
  const auto c = moert::tok::recognise_moonshot_template(no_default);
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->default_system.has_value());
  // Whitespace that jinja would render, or a changed tag, is another template.
  std::string spaced = one_line;
  spaced.insert(spaced.find("<|im_middle|>{{"), " ");
  EXPECT_FALSE(moert::tok::recognise_moonshot_template(spaced).has_value());
  std::string changed = one_line;
  changed.replace(changed.find("message['content']"), 18, "message['text']");
  EXPECT_FALSE(moert::tok::recognise_moonshot_template(changed).has_value());
  // A DeepSeek template is not Moonshot's.
  EXPECT_FALSE(moert::tok::recognise_moonshot_template(moert::tok::deepseek_v3_chat_template()).has_value());
}

TEST(Tiktoken, CanonicalJinjaAppliesHfWhitespaceRules) {
  using moert::tok::canonical_jinja;
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before one goes.
  EXPECT_EQ(canonical_jinja("{% if x %}\n    A{% endif %}"), "{%ifx%}    A{%endif%}");
  EXPECT_EQ(canonical_jinja("{% if x %}\n    {% if y %}B{% endif %}\n{% endif %}"),
            "{%ifx%}{%ify%}B{%endif%}{%endif%}");
  // not after an expression, not before text; '-' strips all whitespace, '+' keeps the indentation.
  EXPECT_EQ(canonical_jinja("{{ a }}\n  x"), "{{a}}\n  x");
  EXPECT_EQ(canonical_jinja("x  \n\t {%- if y -%} \n z"), "x{%ify%}z");
  EXPECT_EQ(canonical_jinja("  {%+ if y %}"), "  {%ify%}");
  EXPECT_EQ(canonical_jinja("{% if x +%}\nA{% endif %}"), "{%ifx%}\nA{%endif%}");  // '+' keeps the newline
  EXPECT_EQ(canonical_jinja("{# note #}A{{ \"q r\" }}"), "A{{'q r'}}");
}

TEST(Tiktoken, RegexIntersectionAndScripts) {
  // [A&&[^B]] (tiktoken's Rust regex and Oniguruma) through a lookahead; \p{Han} is the Script property:
  // U+3002 (Script Common, Script_Extensions Han) stays out of a Han run, as tiktoken splits it.
  moert::tok::Regex han(R"([\p{Han}]+|[\p{L}&&[^\p{Han}]]+|.)");
  std::vector<std::pair<size_t, size_t>> m;
  const std::string s = "ab中文。々c";
  han.find_all(s, &m);
  std::vector<std::string> pieces;
  for (auto [b, e] : m) pieces.push_back(s.substr(b, e - b));
  EXPECT_EQ(pieces, (std::vector<std::string>{"ab", "中文", "。", "々", "c"}));
  EXPECT_EQ(moert::tok::onig_to_pcre2(R"([a-z&&[^aeiou]])"), R"((?:(?=[^aeiou])[a-z]))");
  EXPECT_EQ(moert::tok::onig_to_pcre2(R"(\p{L}\P{Han}\p{^Greek})"), R"(\p{L}\P{sc:Han}\p{^sc:Greek})");
  EXPECT_THROW(moert::tok::onig_to_pcre2(R"([^a&&[b]])"), Error);
  EXPECT_THROW(moert::tok::onig_to_pcre2(R"([a-z&&[^aeiou]x])"), Error);  // [^aeiou] or x: not expressed
  for (const char* empty : {"[&&]", "[a&&]", "[&&a]"}) {
    try {
      moert::tok::onig_to_pcre2(empty);
      ADD_FAILURE() << empty;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("empty side"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(moert::tok::onig_to_pcre2(R"([a-z&&b-y&&c])"), R"((?:(?=(?:(?=[c])[b-y]))[a-z]))");
  EXPECT_THROW(moert::tok::onig_to_pcre2(R"([a&&[b&&[c]]])"), Error);
}

TEST(Tiktoken, ConcurrentEncodesAgree) {
  const auto rows = read_jsonl(kDir + "/encode_cases.jsonl");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (size_t i = w; i < rows.size(); i += 4)
        if (tk().encode(rows[i]["text"].get<std::string>(), false, true) != ids_of(rows[i]["ids"]))
          ++mismatches;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Tiktoken, LoaderErrorsNameTheProblem) {
  const std::string model = slurp(kDir + "/tiktoken.model");
  const std::string cfg = config_text();
  std::string what;
  EXPECT_EQ(load_error(model, ""), ErrorCode::kUnsupported);
  json other = json::parse(cfg);
  other["auto_map"]["AutoTokenizer"][0] = "tokenization_qwen.QWenTokenizer";
  EXPECT_EQ(load_error(model, other.dump(), &what), ErrorCode::kUnsupported);
  EXPECT_NE(what.find("tokenization_qwen.QWenTokenizer"), std::string::npos) << what;
  EXPECT_EQ(load_error("IQ== 0\nnot-base64! 1\n", cfg, &what), ErrorCode::kFormat);
  EXPECT_NE(what.find("line 2"), std::string::npos) << what;
  EXPECT_EQ(load_error("IQ== 0\nIQ== 1\n", cfg, &what), ErrorCode::kFormat);  // a token twice
  EXPECT_EQ(load_error(model + "IQ== 7\n", cfg, &what), ErrorCode::kFormat);  // a rank twice
  EXPECT_EQ(load_error("IQ== 0\n", cfg, &what), ErrorCode::kFormat);          // bytes without a rank
  EXPECT_NE(what.find("byte 0x00"), std::string::npos) << what;
  EXPECT_EQ(load_error(model + "YWJjZGVmZ2hpams= 99999\n", cfg, &what), ErrorCode::kFormat);  // a gap
  EXPECT_EQ(load_error(model + "YQ 5\n", cfg), ErrorCode::kFormat);  // unpadded base64
  EXPECT_EQ(load_error("", cfg), ErrorCode::kFormat);
  json clash = json::parse(cfg);
  clash["added_tokens_decoder"]["7"] = json{{"content", "<x>"}, {"special", true}};
  EXPECT_EQ(load_error(model, clash.dump(), &what), ErrorCode::kFormat);  // an added id inside the ranks
  EXPECT_EQ(Tokenizer::find_in_dir(kDir), kDir + "/tiktoken.model");
  // The class as save_pretrained writes it for a Hub tokenizer ("<repo>--module.Class") is the same class.
  json saved = json::parse(cfg);
  saved["auto_map"]["AutoTokenizer"][0] = "moonshotai/Kimi-K2-Instruct--tokenization_kimi.TikTokenTokenizer";
  EXPECT_EQ(Tokenizer::from_tiktoken(model, saved.dump()).encode("hi", false, true),
            tk().encode("hi", false, true));
  // added_tokens_decoder's HF flags play no part (tiktoken matches every special exactly), whatever their
  // type.
  json flags = json::parse(cfg);
  flags["added_tokens_decoder"]["24002"]["lstrip"] = true;
  flags["added_tokens_decoder"]["24002"]["special"] = nullptr;
  EXPECT_EQ(Tokenizer::from_tiktoken(model, flags.dump()).encode(" <|im_end|> ", false, true),
            tk().encode(" <|im_end|> ", false, true));
  EXPECT_EQ(tk().encode(" <|im_end|> ", false, true), (std::vector<int32_t>{220, kBase + 2, 220}));
  // A wrongly typed field is a format error, not an escaping JSON exception.
  json typed = json::parse(cfg);
  typed["added_tokens_decoder"]["24002"]["content"] = 5;
  EXPECT_EQ(load_error(model, typed.dump()), ErrorCode::kFormat);
  typed = json::parse(cfg);
  typed["add_bos_token"] = "yes";
  EXPECT_EQ(load_error(model, typed.dump(), &what), ErrorCode::kFormat);
  EXPECT_NE(what.find("tokenizer_config.json"), std::string::npos) << what;
  // Ids far past the ranks, and absurdly long tokens, are refused before any table is sized by them.
  json far = json::parse(cfg);
  far["added_tokens_decoder"]["2000000000"] = json{{"content", "<far>"}};
  EXPECT_EQ(load_error(model, far.dump()), ErrorCode::kFormat);
  const std::string long_token(6000, 'a');
  std::string b64;  // 'a' * 6000 in base64: "YWFh" per 3 bytes
  for (size_t i = 0; i < long_token.size() / 3; ++i) b64 += "YWFh";
  EXPECT_EQ(load_error(model + b64 + " 24000\n", cfg, &what), ErrorCode::kFormat);
  EXPECT_NE(what.find("4096"), std::string::npos) << what;
}

// The file's content decides the format: JSON (also after a UTF-8 BOM) is tokenizer.json.
TEST(Tiktoken, LoadTellsTheFormatsApart) {
  const std::string v3 = std::string(MOERT_SOURCE_DIR) + "/samples/models/moert-tiny-coder";
  const Tokenizer plain = Tokenizer::load(v3 + "/tokenizer.json", v3 + "/tokenizer_config.json");
  const std::string path = testing::TempDir() + "/moert-bom-tokenizer.json";
  {
    std::ofstream f(path, std::ios::binary);
    f << "\xEF\xBB\xBF" << slurp(v3 + "/tokenizer.json");
  }
  const Tokenizer bom = Tokenizer::load(path, v3 + "/tokenizer_config.json");
  EXPECT_EQ(bom.encode("def f(x):\n    return x", false, true),
            plain.encode("def f(x):\n    return x", false, true));
  json tj = json::parse(slurp(v3 + "/tokenizer.json"));
  tj["added_tokens"][0]["lstrip"] = nullptr;  // a wrongly typed field: kFormat, not a JSON exception
  try {
    Tokenizer::from_json(tj.dump(), "");
    ADD_FAILURE() << "accepted a null lstrip";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
  }
}
