// Helpers shared by the tokenizer test files: whole files and JSON-lines case files.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

inline std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

// A DeepSeek template variant of chat_template_cases.jsonl ({"join_system", "strip_reasoning",
// "think_generation"}) and its number 0-7 in *bits.
inline moert::tok::ChatTemplateKind chat_variant(const nlohmann::json& v, int* bits) {
  moert::tok::ChatTemplateKind k;
  k.join_system = v["join_system"].get<bool>();
  k.strip_reasoning = v["strip_reasoning"].get<bool>();
  k.think_generation = v["think_generation"].get<bool>();
  *bits = (k.join_system ? 0 : 1) | (k.strip_reasoning ? 2 : 0) | (k.think_generation ? 4 : 0);
  return k;
}
