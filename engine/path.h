// Object and directory names: validated here and nowhere else.
//
// A path is a relative name of '/'-separated components ("ckpt/step-100/rank-3.bin"). Rules:
// at most kMaxPathBytes bytes; no leading or trailing '/' (an absolute-looking name would be
// ambiguous between ranks); components 1..kMaxComponentBytes bytes, not "." or "..", without
// NUL or control characters (0x01..0x1f, 0x7f). The root directory is the empty path "".
#pragma once

#include <string_view>
#include <utility>

#include "shoal/status.h"

namespace shoal::engine {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxComponentBytes = 255;

// InvalidArgument naming the rule broken, or OK. The root "" is not an object path.
Status ValidateObjectPath(std::string_view path);
// Like ValidateObjectPath, but "" (the root) is accepted.
Status ValidateDirPath(std::string_view path);

// ("a/b", "c") for "a/b/c"; ("", "c") for "c". Precondition: a valid object path.
std::pair<std::string_view, std::string_view> SplitParent(std::string_view path);

}  // namespace shoal::engine
