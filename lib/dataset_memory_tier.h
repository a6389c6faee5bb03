// The dataset cache's memory tier: a byte-bounded LRU of whole samples in this process, keyed
// by the sample's cache path (name and version), so a warm epoch that fits in memory is served
// by a memcpy instead of a read from disk.
//
// Why LRU: epochs read the samples in a new random order each time, for which no policy does
// better than holding capacity/size of them; LRU keeps what the current epoch read last (what a
// shuffle with a bounded window re-reads soonest) and costs one list splice per hit under one
// mutex, far below a sample's read. Thread-safe; the copy out runs outside the lock (entries are
// shared and immutable).
#pragma once

#include <cstddef>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace shoal::dataset {

class MemoryTier {
 public:
  explicit MemoryTier(uint64_t capacity) : capacity_(capacity) {}

  // Copies the sample into dst when held; its size (dst must hold it), or -1 when absent.
  int64_t Get(const std::string& key, std::span<std::byte> dst) {
    if (capacity_ == 0) return -1;  // no tier: no lock on the read path
    std::shared_ptr<const std::vector<std::byte>> bytes;
    {
      std::lock_guard lk(mu_);
      auto it = map_.find(key);
      if (it == map_.end()) return -1;
      lru_.splice(lru_.begin(), lru_, it->second);
      bytes = it->second->bytes;
    }
    if (bytes->size() > dst.size()) return -1;
    if (!bytes->empty()) std::memcpy(dst.data(), bytes->data(), bytes->size());
    return static_cast<int64_t>(bytes->size());
  }

  // Keeps a copy of `bytes` (samples above an eighth of the capacity are not kept).
  void Put(const std::string& key, std::span<const std::byte> bytes) {
    if (capacity_ == 0 || bytes.size() > capacity_ / 8) return;
    auto copy = std::make_shared<const std::vector<std::byte>>(bytes.begin(), bytes.end());
    std::lock_guard lk(mu_);
    if (map_.count(key) != 0) return;
    lru_.push_front(Entry{key, copy});
    map_.emplace(key, lru_.begin());
    used_ += copy->size();
    while (used_ > capacity_ && !lru_.empty()) {
      used_ -= lru_.back().bytes->size();
      map_.erase(lru_.back().key);
      lru_.pop_back();
    }
  }

  uint64_t used() const {
    std::lock_guard lk(mu_);
    return used_;
  }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const std::vector<std::byte>> bytes;
  };
  const uint64_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> map_;
  uint64_t used_ = 0;
};

}  // namespace shoal::dataset
