#include "engine/path.h"

#include <fmt/format.h>

namespace shoal::engine {
namespace {

// Printable form of a name for error messages (control bytes escaped, long names cut).
std::string Quote(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  if (s.size() > 80) out += "...";
  return "\"" + out + "\"";
}

}  // namespace

Status ValidateObjectPath(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format("invalid name {}: {}", Quote(path), why));
  };
  if (path.empty()) return bad("empty");
  if (path.size() > kMaxPathBytes) return bad(fmt::format("longer than {} bytes", kMaxPathBytes));
  if (path.front() == '/') return bad("leading '/' (names are relative to the store root)");
  if (path.back() == '/') return bad("trailing '/'");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view comp = path.substr(start, end - start);
    if (comp.empty()) return bad("empty component ('//')");
    if (comp == "." || comp == "..") return bad("'.' or '..' component");
    if (comp.size() > kMaxComponentBytes) {
      return bad(fmt::format("component longer than {} bytes", kMaxComponentBytes));
    }
    for (char c : comp) {
      auto u = static_cast<unsigned char>(c);
      if (u == 0) return bad("NUL byte");
      if (u < 0x20 || u == 0x7f) return bad("control character");
    }
    start = end + 1;
  }
  return Status::OK();
}

Status ValidateDirPath(std::string_view path) {
  if (path.empty()) return Status::OK();
  return ValidateObjectPath(path);
}

std::pair<std::string_view, std::string_view> SplitParent(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace shoal::engine
