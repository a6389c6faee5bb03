// Byte encoding shared by shoal's records and messages (inodes, member records, rendezvous
// tables, collective payloads): a writer that appends fixed-width integers (host order, which
// is little-endian on every supported target) and u32-length-prefixed byte strings, and a
// bounds-checked reader whose every method returns false instead of reading past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace shoal {

inline std::span<const std::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view AsChars(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
// The bytes of a trivially copyable value (an integer in host order).
template <typename T>
std::span<const std::byte> BytesOf(const T& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  return {reinterpret_cast<const std::byte*>(&v), sizeof(T)};
}

class ByteWriter {
 public:
  template <typename T>
  void Put(T v) {
    Raw(BytesOf(v));
  }
  // Appends by resize + memcpy (vector::insert of small arrays trips a GCC 12 false
  // -Warray-bounds).
  void Raw(std::span<const std::byte> b) {
    size_t at = out_.size();
    out_.resize(at + b.size());
    if (!b.empty()) std::memcpy(out_.data() + at, b.data(), b.size());
  }
  void Raw(std::string_view s) { Raw(AsBytes(s)); }
  void Prefixed(std::span<const std::byte> b) {
    Put<uint32_t>(static_cast<uint32_t>(b.size()));
    Raw(b);
  }
  void Prefixed(std::string_view s) { Prefixed(AsBytes(s)); }

  std::vector<std::byte> Take() { return std::move(out_); }
  std::string TakeString() { return std::string(AsChars(out_)); }

 private:
  std::vector<std::byte> out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> b) : b_(b) {}
  explicit ByteReader(std::string_view s) : b_(AsBytes(s)) {}

  template <typename T>
  bool Get(T* v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (b_.size() < sizeof(T)) return false;
    std::memcpy(v, b_.data(), sizeof(T));
    b_ = b_.subspan(sizeof(T));
    return true;
  }
  bool Raw(size_t n, std::span<const std::byte>* out) {
    if (b_.size() < n) return false;
    *out = b_.subspan(0, n);
    b_ = b_.subspan(n);
    return true;
  }
  // A u32 length (at most `max`) and that many bytes.
  bool Prefixed(size_t max, std::span<const std::byte>* out) {
    uint32_t n = 0;
    return Get(&n) && n <= max && Raw(n, out);
  }
  size_t left() const { return b_.size(); }
  bool done() const { return b_.empty(); }

 private:
  std::span<const std::byte> b_;
};

}  // namespace shoal
