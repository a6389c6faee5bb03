// IntervalSet: disjoint half-open byte ranges [begin, end), merged as they are added. Tracks
// which bytes of a chunk writers have filled.
#pragma once

#include <cstdint>
#include <map>

namespace shoal::engine {

class IntervalSet {
 public:
  bool Overlaps(uint64_t begin, uint64_t end) const {
    auto it = ranges_.upper_bound(begin);  // first range starting after begin
    if (it != ranges_.end() && it->first < end) return true;
    if (it != ranges_.begin() && std::prev(it)->second > begin) return true;
    return false;
  }
  // Precondition: !Overlaps(begin, end) and begin < end.
  void Add(uint64_t begin, uint64_t end) {
    auto it = ranges_.upper_bound(begin);
    if (it != ranges_.begin() && std::prev(it)->second == begin) {
      --it;
      begin = it->first;
      it = ranges_.erase(it);
    }
    if (it != ranges_.end() && it->first == end) {
      end = it->second;
      ranges_.erase(it);
    }
    ranges_[begin] = end;
  }
  bool Covers(uint64_t begin, uint64_t end) const {
    auto it = ranges_.upper_bound(begin);
    if (it == ranges_.begin()) return begin >= end;
    --it;
    return it->second >= end;
  }
  // Calls fn(begin, end) for every gap inside [0, limit).
  template <typename Fn>
  void ForEachGap(uint64_t limit, Fn fn) const {
    uint64_t pos = 0;
    for (const auto& [b, e] : ranges_) {
      if (b >= limit) break;
      if (b > pos) fn(pos, b);
      pos = e > pos ? e : pos;
    }
    if (pos < limit) fn(pos, limit);
  }
  bool empty() const { return ranges_.empty(); }

 private:
  std::map<uint64_t, uint64_t> ranges_;  // begin -> end
};

}  // namespace shoal::engine
