// The dataset cache's disk budget on one member: the cached samples this rank's member holds
// (a sample is cached with its first copy on the member of the rank that loaded it), with their
// sizes and order of use, kept within DatasetOptions::capacity_bytes and so that the file
// system under the store keeps DatasetOptions::reserve_bytes free for checkpoints and every
// other object.
//
// Before a sample is cached, Admit names the samples to evict for it, least recently used first
// and never a pinned one, or refuses (pinned samples fill the budget, or nothing left to evict
// frees the reserve): the sample is then served from the source without being cached. Why LRU:
// an epoch reads every sample once in a new random order, for which every policy holds the same
// capacity/size fraction of the next epoch; LRU also keeps what is read again soon when access
// is skewed (a validation split, hot classes), at one list splice per load or local hit. Only
// this rank's loads and hits of samples its member holds move a sample up (reads by other ranks
// do not reach this rank).
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace shoal::dataset {

class DiskBudget {
 public:
  // capacity: bytes of samples this member may hold (0: no limit). reserve: free bytes the
  // file system must keep.
  DiskBudget(uint64_t capacity, uint64_t reserve) : capacity_(capacity), reserve_(reserve) {}

  // A sample held here already (found at Open): the least recently used so far.
  void Adopt(const std::string& path, uint64_t bytes) {
    std::lock_guard lk(mu_);
    if (map_.count(path) != 0) return;
    lru_.push_back(Entry{path, bytes, pinned_.count(path) != 0});
    map_[path] = std::prev(lru_.end());
    used_ += bytes;
  }

  // Room for `bytes` of sample `path`, the file system having `free_bytes` free: true with the
  // samples to evict first in *evict (already forgotten here: remove them; when a removal
  // fails the space stays used until the next Open counts it again), false when there is no
  // room (cache nothing).
  bool Admit(const std::string& path, uint64_t bytes, uint64_t free_bytes,
             std::vector<std::string>* evict) {
    std::lock_guard lk(mu_);
    evict->clear();
    if (auto it = map_.find(path); it != map_.end()) {  // cached again (the old copy is gone)
      used_ -= it->second->bytes;
      lru_.erase(it->second);
      map_.erase(it);
    }
    uint64_t over_capacity = 0, over_reserve = 0;
    if (capacity_ != 0 && used_ + bytes > capacity_) over_capacity = used_ + bytes - capacity_;
    if (free_bytes < reserve_ + bytes) over_reserve = reserve_ + bytes - free_bytes;
    const uint64_t need = std::max(over_capacity, over_reserve);
    if (capacity_ != 0 && bytes > capacity_) return false;
    uint64_t freed = 0;
    std::vector<std::list<Entry>::iterator> victims;
    for (auto it = lru_.rbegin(); it != lru_.rend() && freed < need; ++it) {
      if (it->pinned) continue;
      freed += it->bytes;
      victims.push_back(std::prev(it.base()));
    }
    if (freed < need) return false;
    for (auto it : victims) {
      evict->push_back(it->path);
      used_ -= it->bytes;
      map_.erase(it->path);
      lru_.erase(it);
    }
    evictions_ += victims.size();
    return true;
  }

  // The admitted sample is cached now (its bytes are held here).
  void Added(const std::string& path, uint64_t bytes) {
    std::lock_guard lk(mu_);
    if (map_.count(path) != 0) return;
    lru_.push_front(Entry{path, bytes, pinned_.count(path) != 0});
    map_[path] = lru_.begin();
    used_ += bytes;
  }

  // A read of `path` served from the cache: most recently used, when it is held here.
  void Touch(const std::string& path) {
    std::lock_guard lk(mu_);
    auto it = map_.find(path);
    if (it != map_.end()) lru_.splice(lru_.begin(), lru_, it->second);
  }

  // The sample is gone (removed as unreadable, or its removal found nothing).
  void Forget(const std::string& path) {
    std::lock_guard lk(mu_);
    auto it = map_.find(path);
    if (it == map_.end()) return;
    used_ -= it->second->bytes;
    lru_.erase(it->second);
    map_.erase(it);
  }

  // Pinned samples are never evicted (also those cached later under this path).
  void Pin(const std::string& path, bool pin) {
    std::lock_guard lk(mu_);
    if (pin) pinned_.insert(path);
    else pinned_.erase(path);
    auto it = map_.find(path);
    if (it != map_.end()) it->second->pinned = pin;
  }

  bool Holds(const std::string& path) const {
    std::lock_guard lk(mu_);
    return map_.count(path) != 0;
  }
  uint64_t used() const {
    std::lock_guard lk(mu_);
    return used_;
  }
  uint64_t held() const {
    std::lock_guard lk(mu_);
    return map_.size();
  }
  uint64_t evictions() const {
    std::lock_guard lk(mu_);
    return evictions_;
  }
  uint64_t capacity() const { return capacity_; }
  uint64_t reserve() const { return reserve_; }

 private:
  struct Entry {
    std::string path;
    uint64_t bytes = 0;
    bool pinned = false;
  };
  const uint64_t capacity_;
  const uint64_t reserve_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> map_;
  std::set<std::string> pinned_;
  uint64_t used_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace shoal::dataset
