// BufferPool on its own: alignment, registered-first hand-out, growth past the pool without
// blocking, the cache limit, and many threads sharing one pool.
#include "engine/buffer_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace shoal::engine {
namespace {

bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kBlockSize == 0; }

TEST(BufferPool, SizesRoundUpToBlocksAndBuffersAreAligned) {
  BufferPool pool(5000, 2, 2);
  EXPECT_EQ(pool.buffer_size(), 8192u);
  std::vector<IoBuffer> held;
  for (int i = 0; i < 5; ++i) {
    IoBuffer b = pool.Acquire();
    ASSERT_FALSE(b.empty());
    EXPECT_TRUE(Aligned(b.data)) << i;
    EXPECT_EQ(b.size, 8192u);
    std::memset(b.data, 0xab, b.size);  // the whole buffer is usable
    held.push_back(b);
  }
  for (IoBuffer& b : held) pool.Release(b);
  IoBuffer raw = BufferPool::AllocateRaw(1);
  EXPECT_TRUE(Aligned(raw.data));
  EXPECT_EQ(raw.size, kBlockSize);
  EXPECT_EQ(raw.registered_index, -1);
  BufferPool::FreeRaw(raw);
  IoBuffer zero = BufferPool::AllocateRaw(0);  // still a real block, freeable
  EXPECT_FALSE(zero.empty());
  EXPECT_EQ(zero.size, kBlockSize);
  BufferPool::FreeRaw(zero);
  IoBuffer odd = BufferPool::AllocateRaw(3 * kBlockSize + 1);
  EXPECT_EQ(odd.size, 4 * kBlockSize);
  BufferPool::FreeRaw(odd);
}

TEST(BufferPool, RegisteredBuffersComeFirstAndMatchTheirIovecs) {
  BufferPool pool(4096, 3, 0);
  std::vector<iovec> iov = pool.RegistrableBuffers();
  ASSERT_EQ(iov.size(), 3u);
  std::set<int32_t> indices;
  std::vector<IoBuffer> held;
  for (int i = 0; i < 3; ++i) {
    IoBuffer b = pool.Acquire();
    held.push_back(b);
    ASSERT_GE(b.registered_index, 0);
    ASSERT_LT(b.registered_index, 3);
    EXPECT_EQ(b.data, iov[b.registered_index].iov_base) << "fixed index names this buffer";
    EXPECT_EQ(iov[b.registered_index].iov_len, 4096u);
    indices.insert(b.registered_index);
  }
  EXPECT_EQ(indices.size(), 3u);
  // Exhausted: the pool does not block or fail, it hands out plain buffers.
  IoBuffer extra = pool.Acquire();
  EXPECT_EQ(extra.registered_index, -1);
  EXPECT_TRUE(Aligned(extra.data));
  for (const iovec& v : iov) EXPECT_NE(extra.data, v.iov_base);
  pool.Release(extra);  // cache_limit 0: freed
  // A released registered buffer is handed out again before any plain one.
  IoBuffer plain = pool.Acquire();
  EXPECT_EQ(plain.registered_index, -1);
  pool.Release(plain);
  pool.Release(held[1]);
  IoBuffer reused = pool.Acquire();
  EXPECT_EQ(reused.registered_index, held[1].registered_index);
  EXPECT_EQ(reused.data, held[1].data);
}

TEST(BufferPool, PlainBuffersAreCachedUpToTheLimit) {
  constexpr size_t kLimit = 3;
  BufferPool pool(4096, 1, kLimit);
  std::vector<IoBuffer> held;
  for (int i = 0; i < 8; ++i) held.push_back(pool.Acquire());
  std::set<std::byte*> plain;
  for (const IoBuffer& b : held) {
    if (b.registered_index < 0) plain.insert(b.data);
  }
  EXPECT_EQ(plain.size(), 7u);
  for (IoBuffer& b : held) pool.Release(b);
  // The registered one first, then the cached ones: all from the released set.
  IoBuffer r = pool.Acquire();
  EXPECT_EQ(r.registered_index, 0);
  for (size_t i = 0; i < kLimit; ++i) {
    IoBuffer b = pool.Acquire();
    EXPECT_EQ(b.registered_index, -1);
    EXPECT_EQ(plain.count(b.data), 1u) << "buffer " << i << " should come from the cache";
    held[i] = b;
  }
  for (size_t i = 0; i < kLimit; ++i) pool.Release(held[i]);
  pool.Release(r);
  pool.Release(IoBuffer{});  // an empty buffer is ignored
}

TEST(BufferPool, ThreadsNeverShareABuffer) {
  BufferPool pool(4096, 4, 4);
  constexpr int kThreads = 8, kRounds = 5000;
  std::vector<std::atomic<int>> owner(4);
  std::atomic<int> shared{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        IoBuffer b = pool.Acquire();
        if (b.registered_index >= 0 && owner[b.registered_index].exchange(t + 1) != 0) shared++;
        // Stamp the buffer with this thread and check it is still ours after a moment.
        std::memset(b.data, t + 1, 64);
        if (i % 64 == 0) std::this_thread::yield();
        for (int k = 0; k < 64; ++k) {
          if (static_cast<int>(b.data[k]) != t + 1) {
            shared++;
            break;
          }
        }
        if (b.registered_index >= 0) owner[b.registered_index].store(0);
        pool.Release(b);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(shared.load(), 0);
  // Every registered buffer came back.
  std::set<int32_t> back;
  for (int i = 0; i < 4; ++i) back.insert(pool.Acquire().registered_index);
  EXPECT_EQ(back, (std::set<int32_t>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace shoal::engine
