#include "engine/stat_cache.h"

#include <algorithm>

namespace shoal::engine {

StatCache::StatCache(std::chrono::milliseconds lease, size_t capacity)
    : lease_(lease), per_shard_(std::max<size_t>(1, capacity / kShards)) {}

StatCache::Shard& StatCache::ShardOf(std::string_view path) {
  return shards_[Hash{}(path) % kShards];
}

std::optional<ObjectInfo> StatCache::Get(std::string_view path, Clock::time_point now) {
  if (!enabled()) return std::nullopt;
  Shard& s = ShardOf(path);
  MutexLock lk(&s.mu);
  auto it = s.map.find(path);
  if (it == s.map.end()) return std::nullopt;
  if (now - it->second.at >= lease_ || Forgotten(it->second.at)) {
    s.map.erase(it);
    return std::nullopt;
  }
  ObjectInfo info = it->second.info;
  info.path = it->first;
  return info;
}

void StatCache::Put(const ObjectInfo& info, Clock::time_point at) {
  if (!enabled()) return;
  Shard& s = ShardOf(info.path);
  MutexLock lk(&s.mu);
  if (at <= s.last_forget || Forgotten(at)) return;
  if (s.map.size() >= per_shard_) s.map.clear();
  Entry e{info, at};
  std::string().swap(e.info.path);  // its memory too (clear() keeps the capacity)
  s.map.insert_or_assign(info.path, std::move(e));
}

void StatCache::Forget(std::string_view path) {
  if (!enabled()) return;
  Shard& s = ShardOf(path);
  MutexLock lk(&s.mu);
  if (auto it = s.map.find(path); it != s.map.end()) s.map.erase(it);
  s.last_forget = Clock::now();
}

void StatCache::ForgetAll() {
  // O(1): a Barrier must not pay for clearing a million entries; they go when next looked up.
  if (enabled()) forgot_all_.store(Clock::now().time_since_epoch().count());
}

bool StatCache::Forgotten(Clock::time_point at) const {
  return at.time_since_epoch().count() <= forgot_all_.load();
}

size_t StatCache::size() {
  size_t n = 0;
  for (Shard& s : shards_) {
    MutexLock lk(&s.mu);
    n += s.map.size();
  }
  return n;
}

}  // namespace shoal::engine
