#include "base/copy_streaming.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace shoal {
namespace {

// Every size around the streaming threshold and the 64-byte loop, at every offset within 16
// bytes of source and destination: the bytes arrive exactly, nothing around them is touched.
TEST(CopyStreaming, CopiesExactlyAtEveryAlignmentAndSize) {
  const size_t max = kStreamingMin + 200;
  std::vector<uint8_t> src(max + 64), dst(max + 64);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
  const size_t sizes[] = {0, 1, 15, 16, 63, 64, 65, 4096, kStreamingMin - 1, kStreamingMin,
                          kStreamingMin + 1, kStreamingMin + 63, kStreamingMin + 64,
                          kStreamingMin + 200};
  for (size_t n : sizes) {
    for (size_t so : {0, 1, 8, 15}) {
      for (size_t dof : {0, 3, 16, 17}) {
        std::fill(dst.begin(), dst.end(), uint8_t{0xee});
        CopyStreaming(dst.data() + dof, src.data() + so, n);
        for (size_t i = 0; i < dof; ++i) ASSERT_EQ(dst[i], 0xee) << n << " " << so << " " << dof;
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(dst[dof + i], src[so + i]) << "byte " << i << " of " << n << " " << so << " "
                                               << dof;
        }
        for (size_t i = dof + n; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xee) << n;
      }
    }
  }
}

}  // namespace
}  // namespace shoal
