// shoal::ValidateOptions (include/shoal/options.h): every range Options documents, checked once.
#include <fmt/format.h>

#include "engine/inode.h"
#include "shoal/options.h"

namespace shoal {

Status ValidateOptions(const Options& o) {
  auto bad = [](std::string msg) { return Status::InvalidArgument("Options: " + msg); };
  if (o.store_dir.empty()) return bad("store_dir is empty");
  if (!engine::IsValidChunkSize(o.chunk_size)) {
    return bad(fmt::format("chunk_size {} is not a power of two in 64 KiB..1 GiB", o.chunk_size));
  }
  if (o.queue_depth < 1 || o.queue_depth > 1024) {
    return bad(fmt::format("queue_depth {} not in 1..1024", o.queue_depth));
  }
  if (o.inline_threshold > 65536) {
    return bad(fmt::format("inline_threshold {} above 65536", o.inline_threshold));
  }
  uint64_t s = o.segment_size;
  if (s < (64ull << 20) || s > (64ull << 30) || (s & (s - 1)) != 0 || s < o.chunk_size) {
    return bad(fmt::format("segment_size {} is not a power of two in 64 MiB..64 GiB (and at "
                           "least chunk_size)", s));
  }
  if (o.metadata_map_size < (16ull << 20)) return bad("metadata_map_size below 16 MiB");
  if (o.replicas < 1 || o.replicas > 16) return bad(fmt::format("replicas {} not in 1..16", o.replicas));
  if (o.window < 1 || o.window > 1024) return bad(fmt::format("window {} not in 1..1024", o.window));
  if (o.request_timeout_ms == 0) return bad("request_timeout_ms is 0");
  if (o.repair_parallelism < 1 || o.repair_parallelism > 256) {
    return bad(fmt::format("repair_parallelism {} not in 1..256", o.repair_parallelism));
  }
  if (o.stat_lease_ms > 3600000) {
    return bad(fmt::format("stat_lease_ms {} above 3600000 (an hour)", o.stat_lease_ms));
  }
  if (o.stat_lease_ms > 0 && o.stat_cache_entries == 0) {
    return bad("stat_cache_entries is 0 with a stat lease (set stat_lease_ms to 0 instead)");
  }
  return Status::OK();
}

}  // namespace shoal
