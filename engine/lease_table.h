// LeaseTable: advisory leases on names, in memory (Engine::TryLease). A name's lease belongs to
// one holder (a caller-chosen id) until it runs out or is released; the holder asking again
// renews it. Nothing is written to disk: a restarted process forgets its leases. Expired
// entries are swept as the table is used, so it holds at most the leases taken within a TTL.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace shoal::engine {

class LeaseTable {
 public:
  using Clock = std::chrono::steady_clock;
  struct Outcome {
    bool granted = false;
    uint64_t holder = 0;  // who holds it now
    uint64_t age_ms = 0;  // since that holder first took it
  };

  Outcome Try(std::string_view name, uint64_t holder, std::chrono::milliseconds ttl) {
    const Clock::time_point now = Clock::now();
    std::lock_guard lk(mu_);
    if (++calls_ % kSweepEvery == 0) Sweep(now);
    auto it = leases_.find(std::string(name));
    if (it != leases_.end() && it->second.until > now && it->second.holder != holder) {
      return {false, it->second.holder, Age(it->second, now)};
    }
    if (it == leases_.end() || it->second.holder != holder) {
      it = leases_.insert_or_assign(std::string(name), Entry{holder, now, now + ttl}).first;
    } else {
      it->second.until = now + ttl;  // renewed
    }
    return {true, holder, Age(it->second, now)};
  }

  // Ends `holder`'s lease on `name`; nothing when another holds it (or nobody).
  void Release(std::string_view name, uint64_t holder) {
    std::lock_guard lk(mu_);
    auto it = leases_.find(std::string(name));
    if (it != leases_.end() && it->second.holder == holder) leases_.erase(it);
  }

  size_t size() const {
    std::lock_guard lk(mu_);
    return leases_.size();
  }

 private:
  struct Entry {
    uint64_t holder = 0;
    Clock::time_point since;
    Clock::time_point until;
  };
  static constexpr uint64_t kSweepEvery = 1024;
  static uint64_t Age(const Entry& e, Clock::time_point now) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - e.since).count());
  }
  void Sweep(Clock::time_point now) {
    for (auto it = leases_.begin(); it != leases_.end();) {
      it = it->second.until <= now ? leases_.erase(it) : std::next(it);
    }
  }

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> leases_;
  uint64_t calls_ = 0;
};

}  // namespace shoal::engine
