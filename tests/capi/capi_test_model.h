// A model loaded through moert.h alone, as the C API tests load them: 2 threads and, when given, the
// "speculative" load option. A failed load is a test failure (the handle is then null).
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "moert/moert.h"

namespace moert_test {

inline moert_model* load_model(const std::string& dir, const char* speculative = nullptr) {
  moert_options* o = nullptr;
  moert_options_create(&o);
  moert_options_set_int(o, "threads", 2);
  if (speculative) moert_options_set_string(o, "speculative", speculative);
  moert_model* m = nullptr;
  EXPECT_EQ(moert_model_load(dir.c_str(), o, nullptr, nullptr, &m), MOERT_OK) << moert_last_error();
  moert_options_free(o);
  return m;
}

}  // namespace moert_test
