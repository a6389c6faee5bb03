#include "base/errno_status.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace shoal {

Status ErrnoStatus(int err, std::string_view context) {
  std::string msg = fmt::format("{}: {} (errno {})", context, std::strerror(err), err);
  switch (err) {
    case ENOSPC:
    case EDQUOT: return Status::NoSpace(msg);
    case ENOENT: return Status::NotFound(msg);
    case EEXIST: return Status::AlreadyExists(msg);
    case EACCES:
    case EPERM:
    case EROFS: return Status::PermissionDenied(msg);
    case EINVAL: return Status::InvalidArgument(msg);
    case EAGAIN:
    case EBUSY: return Status::Unavailable(msg);
    default: return Status::IOError(msg);
  }
}

}  // namespace shoal
