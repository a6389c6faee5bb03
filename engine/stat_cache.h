// StatCache: the ObjectInfo of sealed objects a member looked up at another member, kept for a
// lease so that repeated Stats of the same names cost no round trip (Options::stat_lease_ms,
// Engine::Stat's contract). A sealed object never changes until it is removed, so an entry can
// only be stale in one way: the object was removed (and perhaps a new one made under its name)
// by another rank less than a lease ago. The member's own Remove and Seal of a name forget it at
// once, so a rank always sees its own changes.
//
// Only Stat uses it: reads and Locate look the inode up (an inline object's bytes live in its
// metadata record, and a stale record must never be served as data).
//
// Bounded: `capacity` entries over kShards shards; a full shard forgets itself (its entries come
// back on their next lookup). Thread-safe: a mutex per shard.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/thread_annotations.h"
#include "shoal/engine.h"

namespace shoal::engine {

class StatCache {
 public:
  using Clock = std::chrono::steady_clock;

  // lease 0: the cache keeps nothing.
  StatCache(std::chrono::milliseconds lease, size_t capacity);

  bool enabled() const { return lease_.count() > 0; }
  // The entry of `path` if it was put less than a lease before `now`.
  std::optional<ObjectInfo> Get(std::string_view path, Clock::time_point now = Clock::now());
  // Records `info` (info.path is the key) as looked up at `at` (taken before the lookup was
  // sent: the lease runs from the moment the owner could last have answered otherwise). Not
  // recorded when a Forget of a name in its shard came after `at`: a lookup that raced with
  // this member's own Remove must not bring the removed object back.
  void Put(const ObjectInfo& info, Clock::time_point at);
  // Drops `path` (this member removed or sealed it).
  void Forget(std::string_view path);
  // Drops every entry, and every lookup sent before (a collective ended: whatever any rank did
  // before entering it must be seen after it). Constant time: the entries are dropped when next
  // looked up (or with their shard when it fills).
  void ForgetAll();
  // Entries held (those a ForgetAll dropped count until they are looked up again).
  size_t size();

  // Forgets `path` when it goes out of scope: at the end of this member's Remove or Seal, after
  // the owners applied it (a Stat that looked the name up before is not recorded).
  class ForgetOnReturn {
   public:
    ForgetOnReturn(StatCache* cache, std::string_view path) : cache_(cache), path_(path) {}
    ~ForgetOnReturn() { cache_->Forget(path_); }
    ForgetOnReturn(const ForgetOnReturn&) = delete;
    ForgetOnReturn& operator=(const ForgetOnReturn&) = delete;

   private:
    StatCache* cache_;
    std::string_view path_;
  };

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    ObjectInfo info;  // without its path: the key holds it
    Clock::time_point at;
  };
  // Lookups by string_view without building a std::string (a warm Stat allocates only its
  // result).
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    Mutex mu;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> map GUARDED_BY(mu);
    Clock::time_point last_forget GUARDED_BY(mu){};
  };
  Shard& ShardOf(std::string_view path);
  // Whether a lookup sent at `at` came before the last ForgetAll.
  bool Forgotten(Clock::time_point at) const;

  const std::chrono::milliseconds lease_;
  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
  std::atomic<Clock::rep> forgot_all_{std::numeric_limits<Clock::rep>::min()};
};

}  // namespace shoal::engine
