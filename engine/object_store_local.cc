// ObjectStore::LocalObjects and GetLocalSpace (what this store holds, and the room left for
// it) and its leases: Engine's calls about this member itself, for a store used alone.
#include <sys/statvfs.h>

#include <cerrno>
#include <string>
#include <vector>

#include "base/errno_status.h"
#include "engine/object_store.h"
#include "engine/path.h"

namespace shoal::engine {

Result<std::vector<LocalObject>> ObjectStore::LocalObjects(std::string_view dir) {
  std::vector<LocalObject> out;
  std::vector<std::string> dirs{std::string(dir)};
  while (!dirs.empty()) {
    const std::string d = std::move(dirs.back());
    dirs.pop_back();
    ListOptions lo;
    lo.limit = 100000;
    for (;;) {
      SHOAL_ASSIGN_OR_RETURN(ListPage page, List(d, lo));
      for (const DirEntry& e : page.entries) {
        std::string path = d.empty() ? e.name : d + "/" + e.name;
        if (e.is_dir) dirs.push_back(std::move(path));
        else out.push_back(LocalObject{std::move(path), e.size});
      }
      if (!page.truncated) break;
      lo.start_after = page.next_start_after;
    }
  }
  return out;
}

Result<LocalSpace> ObjectStore::GetLocalSpace() {
  struct statvfs st {};
  if (::statvfs(options_.store_dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno, "statvfs " + options_.store_dir);
  }
  return LocalSpace{static_cast<uint64_t>(st.f_blocks) * st.f_frsize,
                    static_cast<uint64_t>(st.f_bavail) * st.f_frsize};
}

Result<Lease> ObjectStore::TryLease(std::string_view name, uint64_t holder,
                                    std::chrono::milliseconds ttl) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(name));
  const LeaseTable::Outcome o = leases_.Try(name, holder, ttl);
  return Lease{o.granted, o.holder, o.age_ms};
}

Status ObjectStore::ReleaseLease(std::string_view name, uint64_t holder) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(name));
  leases_.Release(name, holder);
  return Status::OK();
}

}  // namespace shoal::engine
