// shoal-membership-bench: what a change of membership costs (docs/membership.md), in a world of
// in-process members over real stores (LMDB, segment files) in one process:
//   open      Open of an unchanged world of 4 holding N metadata records, against the Open of
//             the same world empty (the baseline): the ratio shows Open is O(shards), not
//             O(records);
//   join      a 5th, empty member joins: record copies moved, as a fraction of all copies (goal
//             <= 1.1 / 4), and the Open's time;
//   reopen    the same 5 again: the Open after a join, whose old holders retire their copies of
//             the shards that moved (dropped in the background, not before the world serves);
//   rebuild   a member's disk lost and declared lost: Open (metadata shards rebuilt), then the
//             background repair of every member (chunk replicas rebuilt) over the N records and
//             V MiB of 4 MiB objects, waited for on every member.
//
//   shoal-membership-bench [--records N] [--volume-mib V] [--threads T] [--dir DIR]
//                          [--repair-parallelism P]   (objects each member's background
//                                              repair works on at once; default 8)
//                          [--reuse STORES]   (the stores m0..m3 a killed run left in STORES:
//                                              no puts, and the record count is the stores')
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tests/engine/inproc_world.h"
#include "tests/test_util.h"

namespace {

using shoal::Status;
using shoal::testing::InProcWorld;
using shoal::testing::TempDir;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

void Die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

Status Put(shoal::engine::Cluster& c, const std::string& path, std::span<const std::byte> data) {
  SHOAL_RETURN_IF_ERROR(c.Create(path, {}));
  Status s = c.Write(path, 0, data);
  if (s.ok()) s = c.Seal(path);
  if (!s.ok()) (void)c.Abort(path);
  return s;
}

// Median of `runs` Opens of `stores`, in ms (wall time of the whole world's Open).
double MedianOpenMs(InProcWorld& w, const std::vector<uint32_t>& stores, int runs) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    w.Stop();
    auto t = Clock::now();
    Die(w.StartStores(stores, {}, std::chrono::milliseconds(30000)), "open");
    ms.push_back(Seconds(t) * 1000);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t records = 1000000, volume_mib = 256;
  uint32_t threads = 32, repair_parallelism = shoal::engine::ClusterOptions{}.repair_parallelism;
  std::string root, reuse;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--records") records = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--volume-mib") volume_mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--threads") threads = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    else if (a == "--dir") root = argv[i + 1];
    else if (a == "--repair-parallelism") {
      repair_parallelism = static_cast<uint32_t>(std::strtoul(argv[i + 1], nullptr, 10));
    }
    else if (a == "--reuse") reuse = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!root.empty()) ::setenv("TMPDIR", root.c_str(), 1);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::vector<std::string> nodes{"n0", "n1", "n2", "n3", "n4"};

  // ---- open: empty world of 4 (baseline), then the same with N records ----
  TempDir empty_dir;
  InProcWorld empty(empty_dir, nodes, 2, 1);
  empty.set_metadata_map_size(16ull << 30);
  Die(empty.StartStores({0, 1, 2, 3}, {}, std::chrono::milliseconds(60000)), "open empty");
  const double empty_ms = MedianOpenMs(empty, {0, 1, 2, 3}, 5);
  empty.Stop();

  TempDir dir;
  if (!reuse.empty()) {
    for (int m = 0; m < 4; ++m) {
      std::filesystem::rename(reuse + "/m" + std::to_string(m), dir.Sub("m" + std::to_string(m)));
    }
    records = 0;
  }
  InProcWorld w(dir, nodes, 2, 2);
  w.set_metadata_map_size(16ull << 30);
  w.set_join_timeout(std::chrono::minutes(10));
  w.set_repair_parallelism(repair_parallelism);
  Die(w.StartStores({0, 1, 2, 3}, {}, std::chrono::milliseconds(60000)), "open");
  auto t = Clock::now();
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> pool;
  const std::vector<std::byte> small(64, std::byte{7});
  for (uint32_t k = 0; k < threads; ++k) {
    pool.emplace_back([&, k] {
      for (uint64_t i; (i = next.fetch_add(1)) < records;) {
        Die(Put(w.at(k % 4), "r/" + std::to_string(i % 1000) + "/o" + std::to_string(i), small),
            "put");  // size not declared: striped, one chunk on each of 2 holders
        if (i % 100000 == 0 && i != 0) {
          std::printf("  %llu records in %.1f s\n", static_cast<unsigned long long>(i), Seconds(t));
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  if (records != 0) std::printf("put %llu records (64-byte objects, one chunk on 2 holders each, %u threads): %.1f s, %.0f/s\n",
              static_cast<unsigned long long>(records), threads, Seconds(t),
              static_cast<double>(records) / Seconds(t));
  const double full_ms = MedianOpenMs(w, {0, 1, 2, 3}, 5);
  uint64_t held = 0, pulled = 0;
  for (uint32_t r = 0; r < 4; ++r) {
    held += w.at(r).open_report().records_held;
    pulled += w.at(r).open_report().records_pulled;
  }
  std::printf("open, unchanged world of 4: %.1f ms with %llu record copies (%llu pulled) vs %.1f ms "
              "empty: %.2fx (median of 5)\n",
              full_ms, static_cast<unsigned long long>(held), static_cast<unsigned long long>(pulled),
              empty_ms, full_ms / empty_ms);

  // ---- join: a 5th member ----
  w.Stop();
  t = Clock::now();
  Die(w.StartStores({0, 1, 2, 3, 4}, {}, std::chrono::milliseconds(600000)), "join");
  const double join_s = Seconds(t);
  // The new owners catch up in the background (the old holders serve meanwhile).
  pulled = 0;
  uint64_t behind = 0;
  for (uint32_t r = 0; r < 5; ++r) {
    auto bg = w.at(r).WaitForRepair(std::chrono::hours(1));
    Die(bg.status(), "catch up after the join");
    pulled += w.at(r).open_report().records_pulled + bg->metadata_copied;
    behind += w.at(r).open_report().shards_behind;
  }
  const double caught_s = Seconds(t);
  std::printf("join of 1 to 4: %llu of %llu record copies moved (%.3f; goal <= %.3f); open %.2f s, "
              "%llu shard copies caught up in the background; catch-up and repair done %.2f s after "
              "the open began\n",
              static_cast<unsigned long long>(pulled), static_cast<unsigned long long>(held),
              static_cast<double>(pulled) / static_cast<double>(held), 1.1 / 4, join_s,
              static_cast<unsigned long long>(behind), caught_s);

  // ---- the Open after the join: the same 5 members ----
  // The old holders' copies of the shards that moved are retired at this Open and dropped in
  // the background (before, they were dropped before the world served: O(records moved)).
  w.Stop();
  t = Clock::now();
  Die(w.StartStores({0, 1, 2, 3, 4}, {}, std::chrono::milliseconds(600000)), "reopen");
  const double reopen_ms = Seconds(t) * 1000;
  uint64_t retired = 0;
  for (uint32_t r = 0; r < 5; ++r) retired += w.at(r).open_report().shards_dropped;
  for (uint32_t r = 0; r < 5; ++r) {
    Die(w.at(r).WaitForRepair(std::chrono::hours(1)).status(), "drop after the reopen");
  }
  const double dropped_s = Seconds(t);
  const double again_ms = MedianOpenMs(w, {0, 1, 2, 3, 4}, 3);
  std::printf("open after the join (same 5 members): %.1f ms, %llu old shard copies retired and "
              "dropped in the background (done %.2f s after the open began); the next open "
              "%.1f ms (median of 3)\n",
              reopen_ms, static_cast<unsigned long long>(retired), dropped_s, again_ms);

  // ---- rebuild: V MiB striped, one member lost ----
  const uint64_t object = 4ull << 20;
  const uint64_t objects = std::max<uint64_t>(1, (volume_mib << 20) / object);
  std::vector<std::byte> big(object);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 131 + 7);
  for (uint64_t i = 0; i < objects; ++i) {
    Die(Put(w.at(i % 5), "v/o" + std::to_string(i), big), "put volume");
  }
  const std::string lost = w.MemberId(2);
  w.Stop();
  std::filesystem::remove_all(w.Store(2));
  t = Clock::now();
  Die(w.StartStores({0, 1, 3, 4}, {lost}, std::chrono::milliseconds(600000)), "open after loss");
  const double open_s = Seconds(t);
  t = Clock::now();
  uint64_t copied_chunks = 0, copied_bytes = 0, lost_objects = 0;
  for (uint32_t r = 0; r < 4; ++r) {
    auto report = w.at(r).WaitForRepair(std::chrono::hours(2));
    Die(report.status(), "background repair");
    copied_chunks += report->chunks_copied;
    copied_bytes += report->bytes_copied;
    lost_objects += report->lost.size();
  }
  const double repair_s = Seconds(t) + open_s;
  std::printf("rebuild after 1 of 5 members lost (%llu MiB in 4 MiB objects + the records): open "
              "%.2f s (metadata shards), background repair (%u objects at once per member) done "
              "%.2f s after the Open began: %llu chunks / %.1f MiB copied, %.2f MB/s, %.0f chunks/s; "
              "lost %llu\n",
              static_cast<unsigned long long>(objects * object >> 20), open_s, repair_parallelism,
              repair_s,
              static_cast<unsigned long long>(copied_chunks),
              static_cast<double>(copied_bytes) / (1 << 20),
              static_cast<double>(copied_bytes) / 1e6 / repair_s,
              static_cast<double>(copied_chunks) / repair_s,
              static_cast<unsigned long long>(lost_objects));
  return 0;
}
