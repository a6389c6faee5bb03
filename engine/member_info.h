// MemberInfo: what each member publishes at the rendezvous (the job rank serving it and its
// slot among that rank's stores, persistent member id, node, transport address), and its
// validating codec.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shoal/result.h"
#include "transport/rendezvous.h"

namespace shoal::engine {

struct MemberInfo {
  uint32_t job_rank = 0;  // the job rank (process) serving this member's store
  uint32_t slot = 0;      // which of that rank's stores (0: its own; 1..: others of its node)
  std::string member_id;  // 32 hex digits, created with the member's store
  std::string node;       // failure domain
  std::vector<std::byte> ucx_address;
};

transport::Blob EncodeMemberInfo(const MemberInfo& m);
// InvalidArgument for any inconsistent field (lengths, empty node, bad id).
Result<MemberInfo> DecodeMemberInfo(std::span<const std::byte> bytes);

}  // namespace shoal::engine
