// Tokenizer tests: every case of the fixtures (tests/data/tokenizer-deepseek-v3) and of the generated corpus
// (tests/data/tokenizer-corpus, made by Hugging Face `tokenizers` and @huggingface/jinja: make_cases.js).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

using moert::ErrorCode;
using moert::StreamDecoder;
using moert::Tokenizer;
using nlohmann::json;

namespace {

const std::string kData = MOERT_TEST_DATA;
const std::string kV3Dir = kData + "/tokenizer-deepseek-v3";
const std::string kCorpus = kData + "/tokenizer-corpus";
const std::string kTinyDir = std::string(MOERT_SOURCE_DIR) + "/samples/models/moert-tiny-coder";

const Tokenizer& v3() {
  static const Tokenizer t = Tokenizer::load(kV3Dir + "/tokenizer.json", kV3Dir + "/tokenizer_config.json");
  return t;
}
const Tokenizer& tiny() {
  static const Tokenizer t =
      Tokenizer::load(kTinyDir + "/tokenizer.json", kTinyDir + "/tokenizer_config.json");
  return t;
}

int32_t max_id(const json& tj) {
  int32_t m = -1;
  for (const auto& [k, v] : tj["model"]["vocab"].items()) m = std::max(m, v.get<int32_t>());
  for (const auto& a : tj["added_tokens"]) m = std::max(m, a["id"].get<int32_t>());
  return m;
}

// The variants of make_cases.js (makeV2Style / makeGpt2Style).
const Tokenizer& v2style() {
  static const Tokenizer t = [] {
    json tj = json::parse(slurp(kTinyDir + "/tokenizer.json"));
    tj["pre_tokenizer"] = json::parse(slurp(kCorpus + "/v2_pretokenizer.json"));
    return Tokenizer::from_json(tj.dump(), "");
  }();
  return t;
}
const Tokenizer& gpt2style() {
  static const Tokenizer t = [] {
    json tj = json::parse(slurp(kTinyDir + "/tokenizer.json"));
    const json v = json::parse(slurp(kCorpus + "/variant_gpt2style.json"));
    tj["normalizer"] = v["normalizer"];
    tj["pre_tokenizer"] = v["pre_tokenizer"];
    int32_t id = max_id(tj) + 1;
    for (json a : v["extra_added_tokens"]) {
      a["id"] = id++;
      tj["added_tokens"].push_back(a);
    }
    return Tokenizer::from_json(tj.dump(), "");
  }();
  return t;
}

bool valid_utf8(const std::string& s) {
  return moert::tok::utf8_valid(s);
}

// Checks encode (with and without special-token parsing), decode (with and without skipping special tokens)
// and streaming decode against one corpus file.
void check_corpus(const Tokenizer& tok, const std::string& file) {
  const auto rows = read_jsonl(kCorpus + "/" + file);
  ASSERT_GT(rows.size(), 100u);
  size_t failures = 0;
  for (size_t i = 0; i < rows.size() && failures < 10; ++i) {
    const json& c = rows[i];
    const std::string text = c["text"].get<std::string>();
    const auto expect = ids_of(c["ids"]);
    const auto got = tok.encode(text, false, true);
    if (got != expect) {
      ++failures;
      ADD_FAILURE() << file << " row " << i << ": encode mismatch for " << json(text).dump() << "\n  got "
                    << json(got).dump() << "\n want " << json(expect).dump();
      continue;
    }
    const auto expect_ns = c.contains("ids_no_special") ? ids_of(c["ids_no_special"]) : expect;
    const auto got_ns = tok.encode(text, false, false);
    if (got_ns != expect_ns) {
      ++failures;
      ADD_FAILURE() << file << " row " << i << ": encode(parse_special=false) mismatch for "
                    << json(text).dump() << "\n  got " << json(got_ns).dump() << "\n want "
                    << json(expect_ns).dump();
    }
    const std::string decoded = c.contains("decoded") ? c["decoded"].get<std::string>() : text;
    const std::string decoded_skip =
        c.contains("decoded_skip_special") ? c["decoded_skip_special"].get<std::string>() : decoded;
    EXPECT_EQ(tok.decode(got, false), decoded) << file << " row " << i;
    EXPECT_EQ(tok.decode(got, true), decoded_skip) << file << " row " << i;
    // Streaming: the pieces concatenate to decode(); no piece is broken UTF-8.
    StreamDecoder sd(tok, false);
    std::string streamed;
    for (int32_t id : got) {
      const std::string piece = sd.push(id);
      EXPECT_TRUE(valid_utf8(piece));
      streamed += piece;
    }
    streamed += sd.finish();
    EXPECT_EQ(streamed, decoded) << file << " row " << i;
  }
  EXPECT_EQ(failures, 0u);
}

}  // namespace

// ------------------------------------------------------------------------------------------------ fixtures

TEST(TokenizerFixtures, EncodeCases) {
  const auto rows = read_jsonl(kV3Dir + "/encode_cases.jsonl");
  ASSERT_EQ(rows.size(), 90u);
  for (const json& c : rows) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = v3().encode(text, false, true);
    EXPECT_EQ(ids, ids_of(c["ids"])) << json(text).dump();
    for (size_t k = 0; k < ids.size() && k < c["tokens"].size(); ++k)
      EXPECT_EQ(v3().id_to_token(ids[k]).value_or("?"), c["tokens"][k].get<std::string>());
    EXPECT_EQ(v3().decode(ids, false) == text, c["decode_roundtrip"].get<bool>()) << json(text).dump();
  }
}

TEST(TokenizerFixtures, ChatCases) {
  const auto rows = read_jsonl(kV3Dir + "/chat_cases.jsonl");
  ASSERT_EQ(rows.size(), 6u);
  for (const json& c : rows) {
    const std::string rendered =
        v3().apply_chat_template(c["messages"].dump(), c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(rendered, c["rendered"].get<std::string>()) << c["name"];
    EXPECT_EQ(v3().encode(rendered, false, true), ids_of(c["ids"])) << c["name"];
  }
}

// -------------------------------------------------------------------------------------------------- corpus

TEST(TokenizerCorpus, DeepSeekV3) {
  check_corpus(v3(), "deepseek_v3_cases.jsonl");
}
TEST(TokenizerCorpus, TinyCoder) {
  check_corpus(tiny(), "tiny_coder_cases.jsonl");
}
TEST(TokenizerCorpus, V2StylePreTokenizer) {
  check_corpus(v2style(), "v2style_cases.jsonl");
}
TEST(TokenizerCorpus, Gpt2StyleNormalizerAndAddedTokenFlags) {
  check_corpus(gpt2style(), "gpt2style_cases.jsonl");
}

TEST(TokenizerCorpus, DecodeRandomIds) {
  const auto rows = read_jsonl(kCorpus + "/deepseek_v3_decode_cases.jsonl");
  ASSERT_GT(rows.size(), 100u);
  for (const json& c : rows) {
    const auto ids = ids_of(c["ids"]);
    EXPECT_EQ(v3().decode(ids, false), c["decoded"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(v3().decode(ids, true), c["decoded_skip_special"].get<std::string>()) << c["ids"].dump();
    for (bool skip : {false, true}) {
      StreamDecoder sd(v3(), skip);
      std::string s;
      for (int32_t id : ids) {
        const std::string piece = sd.push(id);
        EXPECT_TRUE(valid_utf8(piece));
        s += piece;
      }
      s += sd.finish();
      EXPECT_EQ(s, v3().decode(ids, skip));
    }
  }
}

TEST(TokenizerCorpus, ChatTemplates) {
  const auto rows = read_jsonl(kCorpus + "/chat_template_cases.jsonl");
  ASSERT_GT(rows.size(), 50u);
  json cfg = json::parse(slurp(kV3Dir + "/tokenizer_config.json"));
  const std::string tj = slurp(kV3Dir + "/tokenizer.json");
  std::map<int, std::unique_ptr<Tokenizer>> by_variant;
  for (const json& c : rows) {
    int bits = 0;
    const moert::tok::ChatTemplateKind k = chat_variant(c["variant"], &bits);
    auto& tok = by_variant[bits];
    if (!tok) {
      cfg["chat_template"] = moert::tok::deepseek_chat_template(k);
      tok = std::make_unique<Tokenizer>(Tokenizer::from_json(tj, cfg.dump()));
    }
    const std::string r =
        tok->apply_chat_template(c["messages"].dump(), c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(r, c["rendered"].get<std::string>()) << "variant " << bits << " " << c["messages"].dump();
    EXPECT_EQ(tok->encode(r, false, true), ids_of(c["ids"]));
  }
  EXPECT_EQ(by_variant.size(), 8u);
}

// ------------------------------------------------------------------------------------------------ behaviour

TEST(Tokenizer, SpecialIdsAndLookups) {
  EXPECT_EQ(v3().bos_id(), 0);
  EXPECT_EQ(v3().eos_id(), 1);
  EXPECT_TRUE(v3().add_bos_default());
  EXPECT_EQ(v3().vocab_size(), 128815);
  EXPECT_EQ(v3().token_to_id("<｜User｜>").value_or(-1), 128803);
  EXPECT_EQ(v3().id_to_token(128804).value_or(""), "<｜Assistant｜>");
  EXPECT_EQ(v3().token_to_id("Ġworld").value_or(-1), 2058);
  EXPECT_FALSE(v3().token_to_id("no such token").has_value());
  EXPECT_FALSE(v3().id_to_token(200000).has_value());
  EXPECT_TRUE(v3().is_special(0));
  EXPECT_FALSE(v3().is_special(128803));  // <｜User｜> is an added token but not special in V3
  EXPECT_EQ(tiny().bos_id(), 0);
  EXPECT_EQ(tiny().eos_id(), 1);
  EXPECT_EQ(tiny().vocab_size(), 8203);
}

TEST(Tokenizer, AddBosAndParseSpecial) {
  const auto a = v3().encode("Hello");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a[0], 0);
  EXPECT_EQ(std::vector<int32_t>(a.begin() + 1, a.end()), v3().encode("Hello", false, true));
  const std::string s = "<｜begin▁of▁sentence｜>Hi<｜User｜>";
  const auto parsed = v3().encode(s, false, true);
  EXPECT_EQ(parsed.front(), 0);
  EXPECT_EQ(parsed.back(), 128803);
  const auto plain = v3().encode(s, false, false);
  EXPECT_NE(plain.front(), 0);      // the special token is plain text now
  EXPECT_EQ(plain.back(), 128803);  // the non-special added token is still matched
  EXPECT_EQ(v3().decode(plain, false), s);
}

TEST(Tokenizer, InvalidUtf8IsReplacedWithU_FFFD) {
  // Each maximal invalid subsequence becomes one U+FFFD (from_utf8_lossy), then the text is encoded.
  const std::string bad =
      "a\xFF"
      "b\xE2\x82"
      "c\xF0\x9F\x98"
      "\xED\xA0\x80z\xC0";
  const std::string repaired = "a\uFFFDb\uFFFDc\uFFFD\uFFFD\uFFFD\uFFFDz\uFFFD";
  EXPECT_EQ(v3().encode(bad, false, true), v3().encode(repaired, false, true));
  EXPECT_EQ(v3().decode(v3().encode(bad, false, true), false), repaired);
}

TEST(Tokenizer, DecodeSkipsUnknownIds) {
  const auto ids = v3().encode("Hi there", false, true);
  std::vector<int32_t> with_junk = {-5, 129000};
  with_junk.insert(with_junk.end(), ids.begin(), ids.end());
  with_junk.push_back(1 << 30);
  EXPECT_EQ(v3().decode(with_junk, false), "Hi there");
}

TEST(Tokenizer, StreamDecoderHoldsBackIncompleteUtf8) {
  // "😀" is 4 bytes; byte-level BPE may split it over several tokens.
  const std::string text = "a😀b中c👨‍👩‍👧‍👦";
  const auto ids = v3().encode(text, false, true);
  StreamDecoder sd(v3());
  std::string out;
  size_t emitted_chars = 0;
  for (int32_t id : ids) {
    const std::string p = sd.push(id);
    ASSERT_TRUE(valid_utf8(p));
    out += p;
    emitted_chars += p.size();
  }
  EXPECT_EQ(sd.pending_bytes(), 0u);
  EXPECT_EQ(out + sd.finish(), text);
  // Byte tokens of a single 4-byte character, pushed one at a time: nothing until the last.
  const std::string smile = "\xF0\x9F\x98\x80";
  StreamDecoder sd2(v3());
  std::vector<int32_t> byte_ids;
  for (unsigned char b : smile) {
    std::string ch;
    moert::tok::utf8_append(moert::tok::byte_to_char()[b], &ch);
    byte_ids.push_back(v3().token_to_id(ch).value());
  }
  EXPECT_EQ(sd2.push(byte_ids[0]), "");
  EXPECT_EQ(sd2.push(byte_ids[1]), "");
  EXPECT_EQ(sd2.push(byte_ids[2]), "");
  EXPECT_EQ(sd2.pending_bytes(), 3u);
  EXPECT_EQ(sd2.push(byte_ids[3]), smile);
  // A broken sequence: the held bytes become U+FFFD when a byte that cannot continue them arrives.
  EXPECT_EQ(sd2.push(byte_ids[0]), "");
  EXPECT_EQ(sd2.push(v3().token_to_id("x").value()), "\uFFFDx");
  EXPECT_EQ(sd2.push(byte_ids[0]), "");
  EXPECT_EQ(sd2.finish(), "\uFFFD");
}

TEST(Tokenizer, RoundTripAndLongInputs) {
  std::string big;
  for (int i = 0; i < 2000; ++i) big += "word" + std::to_string(i) + (i % 7 ? " " : "\n");
  big += std::string(100000, 'a') + std::string(50000, ' ') + std::string(20000, '7');
  for (const Tokenizer* t : {&v3(), &tiny(), &v2style()})
    EXPECT_EQ(t->decode(t->encode(big, false, true), false), big);
}

TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  const auto rows = read_jsonl(kCorpus + "/deepseek_v3_cases.jsonl");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < rows.size(); i += 2)
        if (v3().encode(rows[i]["text"].get<std::string>(), false, true) != ids_of(rows[i]["ids"]))
          ++mismatches;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Tokenizer, RandomBytesRoundTripWhenValid) {
  // A deterministic miniature of tests/fuzz/fuzz_tokenizer.cpp.
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const std::vector<std::string> pieces = {"a",        " ",    "\n", "中", "😀", "<｜User｜>",
                                           "\xF0\x9F", "\xFF", "7",  "\t", "é"};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const int n = static_cast<int>(next() % 24);
    for (int k = 0; k < n; ++k) {
      if (next() % 3 == 0) {
        s.push_back(static_cast<char>(next() & 0xFF));
      } else {
        s += pieces[next() % pieces.size()];
      }
    }
    for (bool ps : {true, false}) {
      const auto ids = v3().encode(s, false, ps);
      const std::string back = v3().decode(ids, false);
      ASSERT_TRUE(valid_utf8(back));
      if (valid_utf8(s)) {
        ASSERT_EQ(back, s) << json(s).dump();
      }
    }
  }
}

// ----------------------------------------------------------------------------------------------- templates

TEST(ChatTemplate, RecognisesV3AndRendersOthersWithJinja) {
  const json cfg = json::parse(slurp(kV3Dir + "/tokenizer_config.json"));
  const auto kind = moert::tok::recognise_chat_template(cfg["chat_template"].get<std::string>());
  ASSERT_TRUE(kind.has_value());
  EXPECT_TRUE(kind->join_system);
  EXPECT_FALSE(kind->strip_reasoning);
  EXPECT_FALSE(kind->think_generation);
  EXPECT_EQ(moert::tok::deepseek_v3_chat_template(), cfg["chat_template"].get<std::string>());
  // One more character and it is not the V3 template: the jinja engine renders it, as transformers would.
  json other = cfg;
  other["chat_template"] = cfg["chat_template"].get<std::string>() + " ";
  EXPECT_FALSE(moert::tok::recognise_chat_template(other["chat_template"].get<std::string>()).has_value());
  const std::string tj = slurp(kTinyDir + "/tokenizer.json");
  const Tokenizer native = Tokenizer::from_json(tj, cfg.dump());
  const Tokenizer jinja = Tokenizer::from_json(tj, other.dump());
  ASSERT_FALSE(jinja.impl().chat_kind.has_value());
  ASSERT_TRUE(jinja.impl().jinja_chat.has_value());
  const std::string msgs = R"([{"role":"system","content":"s"},{"role":"user","content":"x"}])";
  EXPECT_EQ(jinja.apply_chat_template(msgs, true), native.apply_chat_template(msgs, true) + " ");
  const Tokenizer none = Tokenizer::load(kTinyDir + "/tokenizer.json", "");
  try {
    none.apply_chat_template("[]", true);
    ADD_FAILURE() << "expected kUnsupported";
  } catch (const moert::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
}

TEST(ChatTemplate, JinjaSemanticsOfOddMessages) {
  // An assistant message with content null and no tool_calls renders nothing (jinja iterates the undefined
  // tool_calls as empty); messages of unknown roles or without a role are ignored; {"messages": [...]} works.
  EXPECT_EQ(v3().apply_chat_template(
                R"({"messages":[{"role":"user","content":"a"},{"role":"assistant","content":null},)"
                R"({"content":"x"},"str",{"role":"developer","content":"d"},{"role":"user","content":"b"}]})",
                true),
            "<｜begin▁of▁sentence｜><｜User｜>a<｜User｜>b<｜Assistant｜>");
  // Where jinja raises, so do we (kInvalidArgument).
  for (const char* bad : {R"([{"role":"user"}])", R"([{"role":"user","content":["part"]}])",
                          R"([{"role":"assistant","content":null,"tool_calls":[{"type":"function"}]}])",
                          R"([{"role":"assistant","content":null,"tool_calls":null}])",
                          R"([{"role":"system","content":1}])", R"({"role":"user"})", "not json"}) {
    try {
      v3().apply_chat_template(bad, true);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const moert::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
}

// ---------------------------------------------------------------------------------------------- load errors

TEST(TokenizerLoad, RejectsUnknownComponentsByName) {
  const json base = json::parse(slurp(kTinyDir + "/tokenizer.json"));
  struct Case {
    const char* key;
    json value;
    const char* name;
  };
  const std::vector<Case> cases = {
      {"normalizer", json{{"type", "NFKC"}}, "NFKC"},
      {"normalizer", json{{"type", "Sequence"}, {"normalizers", json::array({json{{"type", "Lowercase"}}})}},
       "Lowercase"},
      {"pre_tokenizer", json{{"type", "Metaspace"}}, "Metaspace"},
      {"pre_tokenizer",
       json{{"type", "Sequence"},
            {"pretokenizers", json::array({json{{"type", "Whitespace"}}, json{{"type", "ByteLevel"}}})}},
       "Whitespace"},
      {"decoder", json{{"type", "WordPiece"}}, "WordPiece"},
      {"post_processor", json{{"type", "BertProcessing"}}, "BertProcessing"},
  };
  for (const Case& c : cases) {
    json tj = base;
    tj[c.key] = c.value;
    try {
      Tokenizer::from_json(tj.dump(), "");
      ADD_FAILURE() << "accepted " << c.name;
    } catch (const moert::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << c.name;
      EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << e.what();
    }
  }
  json tj = base;
  tj["model"]["type"] = "WordPiece";
  EXPECT_THROW(Tokenizer::from_json(tj.dump(), ""), moert::Error);
  EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer.json", ""), moert::Error);
  EXPECT_THROW(Tokenizer::from_json("{not json", ""), moert::Error);
}
