// moert's jinja engine against jinja2 as transformers runs it (tests/data/chat-jinja/cases.jsonl, written by
// make_cases.py there), against the DeepSeek templates' native renderer, inside the tokenizer, and against
// hostile templates that must fail cleanly.
#include "tokenizer/jinja.h"

#include <gtest/gtest.h>

#include <pthread.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/chat_template.h"
#include "tokenizer/chat_template_jinja.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

namespace {

using moert::Error;
using moert::ErrorCode;
using moert::Tokenizer;
using moert::tok::jinja::Template;
using nlohmann::json;
using nlohmann::ordered_json;

const std::string kData = MOERT_TEST_DATA;

std::vector<ordered_json> read_ordered_jsonl(const std::string& path) {
  std::vector<ordered_json> rows;
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(ordered_json::parse(line));
  return rows;
}

// The error code of rendering, or -1 when it renders.
int render_error_code(const std::string& tmpl, const ordered_json& context) {
  try {
    Template(tmpl).render(context);
  } catch (const Error& e) {
    return static_cast<int>(e.code());
  }
  return -1;
}

TEST(Jinja, MatchesJinja2AsTransformersRunsIt) {
  const auto rows = read_ordered_jsonl(kData + "/chat-jinja/cases.jsonl");
  ASSERT_GT(rows.size(), 250u);
  size_t rendered = 0, raised = 0, rejected = 0;
  for (const ordered_json& c : rows) {
    const std::string name = c["name"].get<std::string>();
    const std::string tmpl = c["template"].get<std::string>();
    if (c.value("unparseable", false)) {
      try {
        Template t(tmpl);
        ADD_FAILURE() << name << ": parsed " << tmpl;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << name;
        EXPECT_NE(std::string(e.what()).find("chat template: line 1: "), std::string::npos) << e.what();
        ++rejected;
      }
      continue;
    }
    if (c["expected"].is_null()) {
      try {
        const std::string out = Template(tmpl).render(c["context"]);
        ADD_FAILURE() << name << ": jinja2 raised " << c["error"] << ", moert rendered " << json(out).dump();
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << name << ": " << e.what();
        ++raised;
      }
      continue;
    }
    try {
      EXPECT_EQ(Template(tmpl).render(c["context"]), c["expected"].get<std::string>()) << name << "\n"
                                                                                       << tmpl;
      ++rendered;
    } catch (const Error& e) {
      ADD_FAILURE() << name << ": " << e.what() << "\n" << tmpl;
    }
  }
  EXPECT_GT(rendered, 200u);
  EXPECT_GT(raised, 15u);
  EXPECT_GT(rejected, 8u);
}

TEST(Jinja, RaiseExceptionCarriesTheTemplatesMessageAndLine) {
  try {
    Template("line one\n{% if true %}\n{{ raise_exception('roles must alternate') }}{% endif %}")
        .render(ordered_json::object());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "chat template: line 3: roles must alternate");
  }
}

// The DeepSeek templates (V3 and its R1 variants) rendered by the engine equal the native renderer's cases
// (which transformers wrote).
TEST(Jinja, DeepSeekTemplatesRenderAsTheNativeRenderer) {
  const auto rows = read_jsonl(kData + "/tokenizer-corpus/chat_template_cases.jsonl");
  ASSERT_GT(rows.size(), 50u);
  std::map<int, std::unique_ptr<Template>> by_variant;
  for (const json& c : rows) {
    int bits = 0;
    const moert::tok::ChatTemplateKind k = chat_variant(c["variant"], &bits);
    auto& t = by_variant[bits];
    if (!t) t = std::make_unique<Template>(moert::tok::deepseek_chat_template(k));
    ordered_json vars;
    vars["bos_token"] = "<｜begin▁of▁sentence｜>";
    vars["eos_token"] = "<｜end▁of▁sentence｜>";
    const std::string r =
        moert::tok::render_jinja_chat(*t, vars, c["messages"].dump(), c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(r, c["rendered"].get<std::string>()) << "variant " << bits << " " << c["messages"].dump();
  }
  EXPECT_EQ(by_variant.size(), 8u);
}

// ----------------------------------------------------------------------------------------- in the tokenizer

Tokenizer tiny_with_template(const std::string& tmpl) {
  const std::string dir = std::string(MOERT_SOURCE_DIR) + "/samples/models/moert-tiny-coder";
  json cfg = json::parse(slurp(dir + "/tokenizer_config.json"));
  cfg["chat_template"] = tmpl;
  return Tokenizer::from_json(slurp(dir + "/tokenizer.json"), cfg.dump());
}

TEST(Jinja, TokenizerRendersTemplatesWithoutANativeRenderer) {
  const std::string tmpl = slurp(kData + "/chat-jinja/templates/kimi_like.jinja");
  const Tokenizer t = tiny_with_template(tmpl);
  EXPECT_EQ(
      t.apply_chat_template(R"([{"role":"user","content":"Hi"}])", true),
      "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|><|im_user|>user<|im_middle|>Hi"
      "<|im_end|><|im_assistant|>assistant<|im_middle|>");
  // The object form: "tools" and any other member are template variables; key order is kept in tojson.
  EXPECT_EQ(
      t.apply_chat_template(
          R"({"messages":[{"role":"system","content":"S"}],"tools":[{"type":"function","function":{"name":"f"}}]})",
          false),
      R"(<|im_system|>tool_declare<|im_middle|>[{"type": "function", "function": {"name": "f"}}]<|im_end|>)"
      "<|im_system|>system<|im_middle|>S<|im_end|>");
  // The special tokens of tokenizer_config.json are variables.
  const Tokenizer b = tiny_with_template("{{ bos_token }}|{{ eos_token }}|{{ messages | length }}");
  EXPECT_EQ(b.apply_chat_template("[]", false), "<｜begin▁of▁sentence｜>|<｜end▁of▁sentence｜>|0");
}

TEST(Jinja, TokenizerLoadsATemplateItCannotParseAndSaysWhyWhenApplied) {
  const Tokenizer t = tiny_with_template("ok\n{% include 'other.jinja' %}");
  try {
    t.apply_chat_template("[]", true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("line 2: the 'include' tag is not supported"), std::string::npos)
        << e.what();
  }
  // Bad messages are the caller's error, whatever the template.
  const Tokenizer ok = tiny_with_template("{{ messages }}");
  for (const char* bad : {"not json", R"({"role":"user"})", R"({"messages": 3})"}) {
    try {
      ok.apply_chat_template(bad, true);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
}

// ------------------------------------------------------------------------------------------ hostile input

TEST(Jinja, HostileTemplatesFailCleanly) {
  const ordered_json ctx = ordered_json::object();
  const int invalid = static_cast<int>(ErrorCode::kInvalidArgument);
  // Loops, output and strings beyond the bounds.
  EXPECT_EQ(render_error_code("{% for i in range(100000000) %}{% endfor %}", ctx), invalid);
  EXPECT_EQ(render_error_code("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(10) %}"
                              "{% endfor %}{% endfor %}{% endfor %}",
                              ctx),
            invalid);
  EXPECT_EQ(render_error_code("{{ 'x' * 1000000000 }}", ctx), invalid);
  EXPECT_EQ(render_error_code("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}"
                              "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                              ctx),
            invalid);
  EXPECT_EQ(
      render_error_code("{% for i in range(3000000) %}{{ 'abcdefghijklmnopqrstuvwxyz0123456789abcdefgh' }}"
                        "{% endfor %}",
                        ctx),
      invalid);
  EXPECT_EQ(render_error_code("{{ 2 ** 100 }}", ctx), invalid);
  // Work inside few iterations: lists made, searched and de-duplicated.
  EXPECT_EQ(render_error_code("{% for i in range(1000) %}{% set x = range(1000000) %}{% endfor %}", ctx),
            invalid);
  EXPECT_EQ(render_error_code(
                "{% set big = range(1000000) %}{% for i in range(1000) %}{% if -1 in big %}{% endif %}"
                "{% endfor %}",
                ctx),
            invalid);
  EXPECT_EQ(render_error_code("{{ range(1000000) | unique | list | length }}", ctx), invalid);
  EXPECT_EQ(render_error_code("{{ 0 ** 100000000000000 }}{{ (-1) ** 100000000000001 }}", ctx), -1);
  // Recursion: macros, nested values, a namespace that holds itself.
  EXPECT_EQ(render_error_code("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", ctx), invalid);
  EXPECT_EQ(render_error_code("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}"
                              "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x | length }}",
                              ctx),
            invalid);
  EXPECT_EQ(render_error_code("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", ctx), invalid);
  // A chain of namespaces, each holding the last: torn down without recursion after the render.
  EXPECT_EQ(render_error_code("{% set ns = namespace(prev=none) %}{% for i in range(200000) %}"
                              "{% set ns = namespace(prev=ns) %}{% endfor %}done",
                              ctx),
            -1);
  // Deep nesting in the template text: a parse error, never a stack overflow.
  const std::string parens(20000, '(');
  EXPECT_THROW(Template("{{ " + parens + "1" + std::string(20000, ')') + " }}"), Error);
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  EXPECT_THROW(Template{ifs}, Error);
  EXPECT_THROW(Template("{{ " + std::string(20000, '-') + "1 }}"), Error);
  EXPECT_THROW(Template("{{ x" + std::string(20000, '[') + " }}"), Error);
  // Long chains (left-deep trees): freed without recursion, refused when run.
  std::string chain = "{{ x";
  for (int i = 0; i < 300000; ++i) chain += "|e";
  EXPECT_EQ(render_error_code(chain + " }}", ctx), invalid);
  chain = "{{ 1";
  for (int i = 0; i < 300000; ++i) chain += "+1";
  EXPECT_EQ(render_error_code(chain + " }}", ctx), invalid);
  // Nesting through bound methods, and lists that share a sub-list (exponential to print).
  EXPECT_EQ(render_error_code(
                "{% set h = namespace(v=0) %}{% for i in range(5000) %}{% set h.v = " + std::string(90, '[') +
                    "h.v" + std::string(90, ']') + ".count %}{% endfor %}",
                ctx),
            invalid);
  for (const char* print :
       {"{{ ns.l }}", "{{ ns.l | tojson }}", "{{ ns.l ~ '' }}", "{{ ns.l | string | length }}"})
    EXPECT_EQ(render_error_code(std::string("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
                                            "{% set ns.l = [ns.l, ns.l] %}{% endfor %}") +
                                    print,
                                ctx),
              invalid)
        << print;
  EXPECT_EQ(render_error_code("{{ range(100000) | tojson(indent=' ' * 100000) }}", ctx), invalid);
  // Linear operations repeated: string indexing, comparison and search, iteration of a huge string.
  EXPECT_EQ(
      render_error_code("{% set s = 'ab' * 1000000 %}{% for i in range(100000) %}{{ s[-1] }}{{ s[1999999] }}"
                        "{% endfor %}",
                        ctx),
      invalid);
  EXPECT_EQ(
      render_error_code("{% set a = 'x' * 100000000 %}{% set b = 'x' * 100000000 %}{% for i in range(1000) %}"
                        "{{ a == b }}{% endfor %}",
                        ctx),
      invalid);
  EXPECT_EQ(render_error_code("{{ ('a' * 1000000 ~ 'b') in ('a' * 2000000) }}", ctx), invalid);
  EXPECT_EQ(render_error_code("{% for c in 'a' * 100000000 %}{% break %}{% endfor %}", ctx), invalid);
  EXPECT_EQ(render_error_code("{{ ('a' * 200000).rsplit('a') | length }}", ctx), -1);
  // A message object with 100,000 keys is read in linear time.
  std::string wide = R"([{"role":"user")";
  for (int i = 0; i < 100000; ++i) wide += ",\"k" + std::to_string(i) + "\":" + std::to_string(i);
  wide += "}]";
  EXPECT_EQ(moert::tok::render_jinja_chat(Template("{{ messages[0] | length }} {{ messages[0].k99999 }}"),
                                          ordered_json::object(), wide, false),
            "100001 99999");
  // Deep JSON in the messages.
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(render_error_code("{{ messages }}", ordered_json{{"messages", ordered_json::parse(deep)}}),
            invalid);
  // Odd bytes in the template text.
  EXPECT_THROW(Template(std::string("{{ a \0 b }}", 11)), Error);
  EXPECT_THROW(Template("{{ '\\u12' }}"), Error);
  EXPECT_THROW(Template("{{ 'x' \xff }}"), Error);
}

// The deepest templates the bounds allow run on a thread with a 1 MiB stack (a JVM thread's default).
TEST(Jinja, DeepestAllowedTemplatesFitASmallStack) {
  const std::vector<std::string> deep = {
      "{{ " + std::string(60, '(') + "1" + std::string(60, ')') + " }}",
      "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}bottom{% endif %}{% endmacro %}{{ f(99) }}",
      [] {
        std::string c = "{{ 'x'";
        for (int i = 0; i < 250; ++i) c += "|e";
        return c + " }}";
      }(),
      [] {
        std::string c;
        for (int i = 0; i < 60; ++i) c += "{% if true %}{% for x in [1] %}";
        c += "in";
        for (int i = 0; i < 60; ++i) c += "{% endfor %}{% endif %}";
        return c;
      }()};
  struct Job {
    const std::vector<std::string>* templates;
    std::vector<int> codes;  // -1: rendered
  } job{&deep, {}};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t{1} << 20);
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* p) -> void* {
                  auto* j = static_cast<Job*>(p);
                  for (const std::string& t : *j->templates)
                    j->codes.push_back(render_error_code(t, ordered_json::object()));
                  return nullptr;
                },
                &job),
            0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  // The 100-deep macro recursion is past the run-depth bound: an error, not a crash.
  const int invalid = static_cast<int>(ErrorCode::kInvalidArgument);
  EXPECT_EQ(job.codes, (std::vector<int>{-1, invalid, -1, -1}));
}

}  // namespace
