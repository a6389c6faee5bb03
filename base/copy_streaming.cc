#include "base/copy_streaming.h"

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shoal {

void CopyStreaming(void* dst, const void* src, size_t n) {
#if defined(__SSE2__)
  if (n >= kStreamingMin) {
    auto* d = static_cast<std::byte*>(dst);
    auto* s = static_cast<const std::byte*>(src);
    // Streaming stores need a 16-byte aligned destination: the bytes before it go by memcpy.
    const size_t head = (16 - reinterpret_cast<uintptr_t>(d) % 16) % 16;
    std::memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    for (size_t blocks = n / 64; blocks != 0; --blocks) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16));
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32));
      const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + 48), e);
      d += 64;
      s += 64;
    }
    _mm_sfence();  // the streamed bytes are visible to other threads before the caller goes on
    std::memcpy(d, s, n % 64);
    return;
  }
#endif
  if (n != 0) std::memcpy(dst, src, n);
}

}  // namespace shoal
