// The one place where an errno value becomes a Status.
#pragma once

#include <string_view>

#include "shoal/status.h"

namespace shoal {

// Maps `err` (a positive errno) to a Status whose message is "<context>: <strerror>".
// ENOSPC/EDQUOT -> NoSpace, ENOENT -> NotFound, EEXIST -> AlreadyExists, EACCES/EPERM/EROFS ->
// PermissionDenied, EINVAL -> InvalidArgument, EAGAIN/EBUSY -> Unavailable, else IOError.
Status ErrnoStatus(int err, std::string_view context);

}  // namespace shoal
