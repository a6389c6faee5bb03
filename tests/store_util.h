// Helpers of multi-process tests about stores: a store's member id (read while no engine has
// it open), and an environment variable set for the processes a test starts meanwhile.
#pragma once

#include <cstdlib>
#include <string>

#include "engine/object_store.h"
#include "tests/test_util.h"

namespace shoal::testing {

// The member id of the store in `dir` (as Open's errors and SHOAL_LOST_MEMBERS name it).
inline std::string StoreMemberId(const std::string& dir) {
  auto store = engine::ObjectStore::Open(TestOptions(dir, IoBackend::kPosix, 4));
  return store.ok() ? (*store)->member_id() : "?" + store.status().ToString();
}

// NAME=VALUE in this process's environment (inherited by the children it starts) until the
// end of the scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

}  // namespace shoal::testing
