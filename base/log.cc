#include "base/log.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace shoal {
namespace {

LogLevel ThresholdFromEnv() {
  const char* v = std::getenv("SHOAL_LOG");
  if (v == nullptr) return LogLevel::kWarn;  // a clean run prints nothing
  std::string s(v);
  if (s == "error") return LogLevel::kError;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "debug") return LogLevel::kDebug;
  if (s == "info") return LogLevel::kInfo;
  return LogLevel::kWarn;
}

constexpr const char* kNames[] = {"error", "warn", "info", "debug"};

}  // namespace

bool LogEnabled(LogLevel level) {
  static const LogLevel threshold = ThresholdFromEnv();
  return level <= threshold;
}

void LogLine(LogLevel level, std::string_view line) {
  std::string out = fmt::format("shoal[{}] {}\n", kNames[static_cast<int>(level)], line);
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace shoal
