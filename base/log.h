// Minimal leveled logging to stderr. The threshold comes from SHOAL_LOG (error, warn, info,
// debug; default warn) read once. Lines look like "shoal[info] io backend: io_uring".
// Levels: error = data or a request was lost; warn = something the operator should act on
// (a member failed, a store is damaged, a setting cannot be honoured); info = what a clean run
// does (backends chosen, members leaving, recovery that found something). A clean run prints
// nothing at the default level.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace shoal {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view line);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (LogEnabled(level)) LogLine(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace shoal
