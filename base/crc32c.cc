#include "base/crc32c.h"

#include <isa-l/crc.h>

#include <array>
#include <climits>

namespace shoal {

uint32_t Crc32c(const void* data, size_t len, uint32_t crc) {
  // ISA-L takes an int length and inverts on entry and exit; ~crc in / ~result out gives the
  // standard (RFC 3720) CRC32C that other implementations produce.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  uint32_t c = ~crc;
  while (len > 0) {
    int n = len > static_cast<size_t>(INT_MAX / 2) ? INT_MAX / 2 : static_cast<int>(len);
    c = crc32_iscsi(p, n, c);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return ~c;
}

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // Castagnoli, reflected

// a * b modulo the polynomial (bit-reflected: x^0 is the top bit).
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31;
  uint32_t p = 0;
  while (true) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

// x^(n * 2^k) modulo the polynomial.
uint32_t X2nModP(uint64_t n, unsigned k) {
  static const auto table = [] {
    std::array<uint32_t, 32> t{};
    uint32_t p = 1u << 30;  // x^1
    t[0] = p;
    for (size_t i = 1; i < t.size(); ++i) t[i] = p = MultModP(p, p);
    return t;
  }();
  uint32_t p = 1u << 31;  // x^0
  while (n != 0) {
    if (n & 1) p = MultModP(table[k & 31], p);
    n >>= 1;
    k++;
  }
  return p;
}

}  // namespace

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  return MultModP(X2nModP(len_b, 3), crc_a) ^ crc_b;
}

Crc32cAppender::Crc32cAppender(uint64_t len_b) : op_(X2nModP(len_b, 3)) {}

uint32_t Crc32cAppender::Combine(uint32_t crc_a, uint32_t crc_b) const {
  return MultModP(op_, crc_a) ^ crc_b;
}

}  // namespace shoal
