#include "engine/member_info.h"

#include "base/bytes.h"

namespace shoal::engine {
namespace {

using transport::Blob;

constexpr uint32_t kMemberInfoVersion = 2;  // 2: the slot
constexpr size_t kMaxNode = 255;
constexpr size_t kMaxAddress = 64u << 10;

}  // namespace

Blob EncodeMemberInfo(const MemberInfo& m) {
  ByteWriter w;
  w.Put<uint32_t>(kMemberInfoVersion);
  w.Put<uint32_t>(m.job_rank);
  w.Put<uint32_t>(m.slot);
  w.Prefixed(m.member_id);
  w.Prefixed(m.node);
  w.Prefixed(m.ucx_address);
  return w.Take();
}

Result<MemberInfo> DecodeMemberInfo(std::span<const std::byte> bytes) {
  ByteReader r(bytes);
  uint32_t version = 0;
  MemberInfo m;
  std::span<const std::byte> id, node, addr;
  if (!r.Get(&version) || version != kMemberInfoVersion || !r.Get(&m.job_rank) ||
      !r.Get(&m.slot) ||
      !r.Prefixed(64, &id) || !r.Prefixed(kMaxNode, &node) ||
      !r.Prefixed(kMaxAddress, &addr) || !r.done()) {
    return Status::InvalidArgument("member info: malformed record");
  }
  m.member_id = std::string(AsChars(id));
  m.node = std::string(AsChars(node));
  m.ucx_address.assign(addr.begin(), addr.end());
  if (m.member_id.size() != 32 ||
      m.member_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::InvalidArgument("member info: member id is not 32 hex digits");
  }
  if (m.node.empty()) return Status::InvalidArgument("member info: empty node name");
  if (m.ucx_address.empty()) return Status::InvalidArgument("member info: empty UCX address");
  return m;
}

}  // namespace shoal::engine
