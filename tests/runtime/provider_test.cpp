// The provider seam (runtime/provider): where a provider library is looked for, and how each way of failing
// becomes Error(kUnsupported) naming the file and the reason, never a crash.
#include <gtest/gtest.h>

#include <string>

#include "provider/provider_abi.h"
#include "provider/provider_loader.h"
#include "util/error.h"

namespace moert {
namespace {

// The error's message, or "" when fn did not throw kUnsupported.
template <class Fn>
std::string unsupported(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code() == ErrorCode::kUnsupported ? e.what() : "";
  }
  return "";
}

TEST(Provider, MissingLibraryNamesEveryPlaceLookedAndTheLoadersReason) {
  const std::string msg =
      unsupported([] { provider_entry("libmoert_nothing.so.0", "entry", "device \"nothing\""); });
  EXPECT_NE(msg.find("device \"nothing\" needs the provider library libmoert_nothing.so.0"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find(provider_directory() + "/libmoert_nothing.so.0: cannot open shared object file"),
            std::string::npos)
      << msg;
}

// The fake provider sits beside this test's executable only: it is found there, not on the search path.
TEST(Provider, FoundBesideTheLibraryThatAsks) {
  EXPECT_NE(provider_entry(MOERT_FAKE_PROVIDER, provider::kCudaEntry, "test"), nullptr);
}

TEST(Provider, MissingEntryIsUnsupported) {
  const std::string msg = unsupported([] { provider_entry(MOERT_FAKE_PROVIDER, "no_such_entry", "test"); });
  EXPECT_NE(msg.find("has no entry no_such_entry"), std::string::npos) << msg;
}

TEST(Provider, TableOfAnotherBuildIsRefused) {
  const std::string msg = unsupported(
      [] { provider::open_table<provider::CudaTable>(MOERT_FAKE_PROVIDER, provider::kCudaEntry, "test"); });
  EXPECT_NE(msg.find("is from another moert build (0.0.0-other"), std::string::npos) << msg;
}

}  // namespace
}  // namespace moert
