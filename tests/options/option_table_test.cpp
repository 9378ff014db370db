// The option table (capi/src/option_table.inc) against the code that reads it: every default parses and
// lies in its range, equals the runtime struct's member initialiser (the value used when the key is
// absent), every key changes what its call reads (none is ignored), and a key passed to another scope's
// call is an error naming the key and its scope.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <tuple>

#include "option_values.h"
#include "options.h"
#include "util/error.h"

namespace {

using moert::capi::OptionKind;
using moert::capi::OptionScope;
using moert::capi::OptionSpec;

// The shape fields of a random checkpoint (its progress callback has no ==).
auto shape(const moert::RandomCheckpointSpec& s) {
  return std::tuple(s.vocab, s.hidden, s.intermediate, s.moe_intermediate, s.layers, s.dense_layers, s.heads,
                    s.q_lora, s.kv_lora, s.nope, s.rope, s.vdim, s.experts, s.top_k, s.n_group, s.topk_group,
                    s.shared, s.mtp, s.max_position_embeddings, s.fp8, s.seed, s.shard_bytes);
}

// What the scope's call reads from o, compared as a whole: true when a and b read the same.
bool same_reading(OptionScope scope, const moert_options* a, const moert_options* b) {
  const moert::GenerationDefaults none;
  const auto seed = [] { return uint64_t{12345}; };
  switch (scope) {
    case OptionScope::kLoad:
      return moert::capi::load_options(a) == moert::capi::load_options(b);
    case OptionScope::kGenerate:
      return moert::capi::generate_options(a, none, seed) == moert::capi::generate_options(b, none, seed);
    case OptionScope::kCheckpoint:
      return shape(moert::capi::checkpoint_spec(a)) == shape(moert::capi::checkpoint_spec(b));
    case OptionScope::kQuantize: {
      const moert::QuantizeSpec x = moert::capi::quantize_spec(a), y = moert::capi::quantize_spec(b);
      return x.group == y.group && x.threads == y.threads && x.search == y.search;
    }
  }
  return false;
}

// Sets the key to its table default.
void set_default(moert_options& o, const OptionSpec& s) {
  switch (s.kind) {
    case OptionKind::kInt:
      moert::capi::options_set(o, s.key, static_cast<int64_t>(std::strtoll(s.dflt, nullptr, 10)));
      break;
    case OptionKind::kFloat:
      moert::capi::options_set(o, s.key, std::strtod(s.dflt, nullptr));
      break;
    default:
      moert::capi::options_set(o, s.key, std::string(s.dflt));
  }
}

// Sets the key to a valid value other than its default.
void set_other(moert_options& o, const OptionSpec& s) {
  const bool has_default = *s.dflt != 0;
  switch (s.kind) {
    case OptionKind::kInt: {
      for (const std::string& c : s.choices)  // an int key that lists its values
        if (c != s.dflt) {
          moert::capi::options_set(o, s.key, static_cast<int64_t>(std::strtoll(c.c_str(), nullptr, 10)));
          return;
        }
      const int64_t d = has_default ? std::strtoll(s.dflt, nullptr, 10) : static_cast<int64_t>(s.min);
      moert::capi::options_set(o, s.key, static_cast<int64_t>(d + 1 <= s.max ? d + 1 : d - 1));
      break;
    }
    case OptionKind::kFloat: {
      const double d = has_default ? std::strtod(s.dflt, nullptr) : s.min;
      moert::capi::options_set(o, s.key, d < s.max ? (d + s.max) / 2 : (d + s.min) / 2);
      break;
    }
    case OptionKind::kString: {
      ASSERT_FALSE(s.choices.empty()) << s.key << ": a free string key needs a value to test here";
      for (const std::string& c : s.choices)
        if (c != s.dflt) {
          moert::capi::options_set(o, s.key, c);
          return;
        }
      FAIL() << s.key << " has no choice other than its default";
    }
    case OptionKind::kStringList:  // logit_bias entries are TOKEN_ID:BIAS
      moert::capi::options_add(o, s.key, std::string(std::string(s.key) == "logit_bias" ? "1:5.5" : "</s>"));
      break;
    case OptionKind::kIntList:
      moert::capi::options_add(o, s.key, static_cast<int64_t>(s.min));
      break;
  }
}

// The checkpoint call also checks the shape's consistency: a change to one key may need others set (in
// the options compared with and without the key alike).
void make_consistent(moert_options& o, const OptionSpec& s) {
  const std::string k = s.key;
  if (k == "model.experts") {  // 64 -> 65 experts: one group of them
    moert::capi::options_set(o, "model.groups", int64_t{1});
    moert::capi::options_set(o, "model.topk_groups", int64_t{1});
  }
  if (k == "model.groups") moert::capi::options_set(o, "model.experts", int64_t{72});  // 8 -> 9 groups of 8
}

TEST(OptionTable, KeysAreUniqueAndDocumented) {
  std::set<std::string> seen;
  for (const OptionSpec& s : moert::capi::option_specs()) {
    EXPECT_TRUE(seen.insert(s.key).second) << "duplicate key " << s.key;
    EXPECT_GT(std::string(s.doc).size(), 3u) << s.key;
    EXPECT_LE(s.min, s.max) << s.key;
    EXPECT_EQ(moert::capi::find_option(s.key), &s);
  }
  EXPECT_EQ(moert::capi::find_option("no_such_key"), nullptr);
  EXPECT_GE(seen.size(), 40u);  // the table was read (three scopes)
}

// The default as text parses and is a value the key accepts.
TEST(OptionTable, DefaultsAreValidValues) {
  for (const OptionSpec& s : moert::capi::option_specs()) {
    if (!*s.dflt) {
      EXPECT_TRUE(s.kind == OptionKind::kStringList || s.kind == OptionKind::kIntList ||
                  std::string(s.doc).find("nset") != std::string::npos)
          << s.key << ": without a default its doc must say what unset means";
      continue;
    }
    if (s.kind == OptionKind::kInt || s.kind == OptionKind::kFloat) {
      char* end = nullptr;
      std::strtod(s.dflt, &end);
      EXPECT_EQ(*end, 0) << s.key << ": default \"" << s.dflt << "\" is not a number";
    }
    EXPECT_FALSE(s.kind == OptionKind::kStringList || s.kind == OptionKind::kIntList)
        << s.key << ": a list's default is the empty list (\"\")";
    moert_options o;
    EXPECT_NO_THROW(set_default(o, s)) << s.key << ": default \"" << s.dflt << "\" is out of range";
  }
}

// Setting a key to its table default reads the same as leaving it out: the member initialisers of
// LoadOptions, GenerationParams and RandomCheckpointSpec equal the table.
TEST(OptionTable, DefaultsAreTheRuntimes) {
  const moert_options empty;
  for (const OptionSpec& s : moert::capi::option_specs()) {
    if (!*s.dflt) continue;
    moert_options o;
    set_default(o, s);
    EXPECT_TRUE(same_reading(s.scope, &o, &empty)) << s.key << ": the table's default \"" << s.dflt
                                                   << "\" is not what the runtime uses when it is unset";
    EXPECT_TRUE(same_reading(s.scope, &o, nullptr)) << s.key;
  }
}

// Every key changes what its call reads: a key in the table that no code reads would be ignored silently.
TEST(OptionTable, EveryKeyIsRead) {
  for (const OptionSpec& s : moert::capi::option_specs()) {
    moert_options base, o;
    make_consistent(base, s);
    make_consistent(o, s);
    set_other(o, s);
    EXPECT_FALSE(same_reading(s.scope, &o, &base)) << s.key << ": setting it changes nothing its call reads";
  }
}

// A key passed to a call of another scope is an error naming the key and its scope.
TEST(OptionTable, KeyOfAnotherScopeIsNamed) {
  const OptionScope scopes[] = {OptionScope::kLoad, OptionScope::kGenerate, OptionScope::kCheckpoint,
                                OptionScope::kQuantize};
  for (const OptionSpec& s : moert::capi::option_specs()) {
    moert_options o;
    set_other(o, s);
    for (OptionScope call : scopes) {
      if (call == s.scope) {
        EXPECT_NO_THROW(moert::capi::options_require_scope(&o, call)) << s.key;
        continue;
      }
      try {
        same_reading(call, &o, nullptr);
        ADD_FAILURE() << s.key << " was accepted by a call of another scope";
      } catch (const moert::Error& e) {
        EXPECT_EQ(e.code(), moert::ErrorCode::kInvalidArgument);
        const std::string want =
            "option '" + std::string(s.key) + "' is " + moert::capi::scope_name(s.scope) + ", not ";
        EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      }
    }
  }
}

// Values outside the table's range or choices, and values of the wrong type, are errors naming the key.
TEST(OptionTable, RangesAndChoicesAreEnforced) {
  for (const OptionSpec& s : moert::capi::option_specs()) {
    moert_options o;
    auto rejected = [&](auto value) {
      try {
        moert::capi::options_set(o, s.key, value);
      } catch (const moert::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'" + std::string(s.key) + "'"), std::string::npos) << e.what();
        return true;
      }
      return false;
    };
    switch (s.kind) {
      case OptionKind::kInt:
        if (s.max < 1e15) {
          EXPECT_TRUE(rejected(static_cast<int64_t>(s.max) + 1)) << s.key;
        }
        EXPECT_TRUE(rejected(static_cast<int64_t>(s.min) - 1)) << s.key;
        EXPECT_TRUE(rejected(std::string("1"))) << s.key;
        break;
      case OptionKind::kFloat:
        EXPECT_TRUE(rejected(s.max + std::fabs(s.max) + 1)) << s.key;
        EXPECT_TRUE(rejected(s.min - std::fabs(s.min) - 1)) << s.key;
        EXPECT_TRUE(rejected(std::nan(""))) << s.key;
        break;
      case OptionKind::kString:
        if (!s.choices.empty()) {
          EXPECT_TRUE(rejected(std::string("no-such-choice"))) << s.key;
        }
        EXPECT_TRUE(rejected(int64_t{1})) << s.key;
        break;
      default:
        EXPECT_TRUE(rejected(int64_t{1})) << s.key << ": a list takes moert_options_add_*";
    }
  }
}

}  // namespace
