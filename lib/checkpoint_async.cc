// The async half of a checkpoint save: the caller's bytes staged into the bounded staging pool,
// and the background writer that writes, seals and finally commits them.
#include <fmt/format.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>

#include "base/copy_streaming.h"
#include "base/crc32c.h"
#include "lib/save_job.h"

namespace shoal {
namespace {

// async: the largest piece staged and written at once (one queue item); a quarter of the pool
// when that is less, so small pools keep copies and writes overlapping. The copy into a slice
// streams (base/copy_streaming.h): with glibc's memcpy, slices under its 192 MiB non-temporal
// threshold copied at 0.6x the speed of one call, which is what made 64 MiB slices cost 2.2x a
// memcpy of the state (docs/bench.md).
constexpr uint64_t kMaxSlice = 256ull << 20;

}  // namespace

void SaveJob::Work() {
  // A background writer: SCHED_BATCH keeps it from preempting the caller when it wakes (the
  // caller's Commit and next steps come first; it still gets its fair share of the CPU).
  sched_param none{};
  (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
  for (;;) {
    Item item;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !queue.empty() && draining; });
      item = std::move(queue.front());
      queue.pop_front();
    }
    switch (item.kind) {
      case Item::kWrite: {
        // The CRC32C runs unlocked (a slice is up to 256 MiB: under `mu` it held the caller's
        // next Save, Commit or the CheckpointSave's destructor for as long).
        bool ok;
        uint32_t sum = 0;
        {
          std::lock_guard lk(mu);
          ok = error.ok();
          if (ok) sum = crc[item.path];
        }
        if (ok) {
          sum = Crc32c(item.bytes.data(), item.bytes.size(), sum);
          {
            std::lock_guard lk(mu);
            crc[item.path] = sum;
          }
          Status s = engine->Write(item.path, item.offset, item.bytes);
          if (!s.ok()) Fail(s.WithContext(fmt::format("saving \"{}\"", item.path)));
        }
        pool->Release(item.bytes);
        break;
      }
      case Item::kSeal: {
        Status s;
        {
          std::lock_guard lk(mu);
          s = error;
        }
        if (s.ok()) s = engine->Seal(item.path);
        if (!s.ok()) {
          (void)engine->Abort(item.path);
          Fail(s.WithContext(fmt::format("saving \"{}\"", item.path)));
          break;
        }
        std::lock_guard lk(mu);
        blobs.push_back({item.name, item.offset, crc[item.path], engine->rank()});
        crc.erase(item.path);
        break;
      }
      case Item::kCommit: {
        CommitAndFinish(item.metadata);
        return;
      }
      case Item::kStop:
        return;
    }
  }
}

void SaveJob::Stage(const std::string& path, std::string_view name, uint64_t size,
                    std::span<const std::span<const std::byte>> pieces) {
  {
    std::lock_guard lk(mu);
    names.insert(std::string(name));
    crc[path] = 0;
  }
  // Small pieces share a staging region (one engine Write for many small tensors); a region is
  // at most one slice.
  const uint64_t slice =
      std::min<uint64_t>(kMaxSlice, std::max<uint64_t>(pool->capacity() / 4, uint64_t{1} << 20));
  uint64_t blob_off = 0;
  size_t i = 0;
  uint64_t piece_off = 0;
  while (blob_off < size) {
    const uint64_t n = std::min<uint64_t>(slice, size - blob_off);
    // The region starts where the first bytes copied in start, within a page (StagingPool).
    uint64_t phase = 0;
    for (size_t j = i, o = piece_off; j < pieces.size(); ++j, o = 0) {
      if (pieces[j].size() > o) {
        phase = reinterpret_cast<uintptr_t>(pieces[j].data() + o) % StagingPool::kPage;
        break;
      }
    }
    if (pool->WouldWait(n, phase)) Drain();
    std::span<std::byte> region = pool->Acquire(n, phase);  // waits while the pool is full
    for (uint64_t filled = 0; filled < n;) {
      const auto& p = pieces[i];
      const uint64_t k = std::min<uint64_t>(n - filled, p.size() - piece_off);
      // Streaming stores: the writer reads these bytes later, and glibc streams only copies
      // above 192 MiB here (base/copy_streaming.h). Empty pieces have no pointer.
      if (k != 0) CopyStreaming(region.data() + filled, p.data() + piece_off, k);
      filled += k;
      piece_off += k;
      if (piece_off == p.size()) {
        ++i;
        piece_off = 0;
      }
    }
    Push(Item::Write(path, blob_off, region));
    blob_off += n;
  }
  Push(Item::Seal(path, name, size));
}

void SaveJob::StopWriter() {
  Push(Item::Stop());
  if (worker.joinable()) worker.join();
  // Blobs whose seal never ran are still open: abort them.
  std::vector<std::string> open;
  {
    std::lock_guard lk(mu);
    for (auto& [path, c] : crc) open.push_back(path);
  }
  for (const std::string& p : open) (void)engine->Abort(p);
}

}  // namespace shoal
