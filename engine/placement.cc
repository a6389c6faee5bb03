#include "engine/placement.h"

#include <boost/container/small_vector.hpp>
#include <xxhash.h>

#include <algorithm>

namespace shoal::engine {
namespace {


// Where an object's chunk rotation starts among n members.
uint64_t RotationStart(uint64_t object_id, size_t n) {
  return XXH3_64bits_withSeed(&object_id, sizeof(object_id), 0x5107) % n;
}

}  // namespace

Placement::Placement(std::vector<PlacementMember> members) : members_(std::move(members)) {
  std::sort(members_.begin(), members_.end(),
            [](const PlacementMember& a, const PlacementMember& b) {
              return a.member_id < b.member_id;
            });
}

template <typename Order>
std::vector<uint32_t> Placement::Pick(uint32_t want, size_t candidates, Order order,
                                      const std::vector<uint32_t>& holding,
                                      const std::vector<uint32_t>& unusable) const {
  // Every read plans its pieces through here: small inline sets (linear search over a few
  // members) instead of node-allocating std::sets.
  boost::container::small_vector<uint32_t, 16> taken;
  boost::container::small_vector<std::string_view, 16> nodes;
  auto contains = [](const auto& v, const auto& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  auto insert = [&](auto& v, const auto& x) {
    if (!contains(v, x)) v.push_back(x);
  };
  for (uint32_t m : unusable) insert(taken, m);
  for (uint32_t m : holding) {
    insert(taken, m);
    insert(nodes, std::string_view(members_[m].node));
  }
  want = static_cast<uint32_t>(
      std::min<size_t>(want, members_.size() - std::min(members_.size(), taken.size())));
  std::vector<uint32_t> out;
  out.reserve(want);
  // First pass: distinct nodes. Second pass: any member not yet taken.
  for (int pass = 0; pass < 2 && out.size() < want; ++pass) {
    for (size_t k = 0; k < candidates && out.size() < want; ++k) {
      uint32_t m = order(k);
      if (contains(taken, m)) continue;
      if (pass == 0 && contains(nodes, std::string_view(members_[m].node))) continue;
      taken.push_back(m);
      insert(nodes, std::string_view(members_[m].node));
      out.push_back(m);
    }
  }
  return out;
}

std::vector<uint32_t> Placement::ChunkHolders(uint64_t object_id, uint64_t chunk,
                                              uint32_t replicas, int32_t home) const {
  if (members_.empty()) return {};
  const size_t n = members_.size();
  const uint64_t start = RotationStart(object_id, n);
  if (home >= 0 && static_cast<size_t>(home) < n) {
    return Pick(replicas, n + 1, [&](size_t k) {
      return k == 0 ? static_cast<uint32_t>(home)
                    : static_cast<uint32_t>((start + chunk + k - 1) % n);
    });
  }
  return Pick(replicas, n, [&](size_t k) {
    return static_cast<uint32_t>((start + chunk + k) % n);
  });
}

std::vector<uint32_t> Placement::MoreHolders(uint64_t object_id, uint64_t chunk,
                                             const std::vector<uint32_t>& holding,
                                             const std::vector<uint32_t>& unusable,
                                             uint32_t want) const {
  const size_t n = members_.size();
  if (n == 0) return {};
  const uint64_t start = RotationStart(object_id, n);
  return Pick(want, n, [&](size_t k) { return static_cast<uint32_t>((start + chunk + k) % n); },
              holding, unusable);
}

}  // namespace shoal::engine
