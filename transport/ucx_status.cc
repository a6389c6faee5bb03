#include "transport/ucx_status.h"

#include <fmt/format.h>

namespace shoal::transport {

Status UcxStatus(ucs_status_t status, std::string_view context) {
  if (status == UCS_OK) return Status::OK();
  std::string msg = fmt::format("{}: {} (UCX {})", context, ucs_status_string(status),
                                static_cast<int>(status));
  switch (status) {
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_REJECTED:
    case UCS_ERR_CANCELED:
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_NO_RESOURCE:
    case UCS_ERR_BUSY:
    case UCS_ERR_NO_DEVICE: return Status::Unavailable(msg);
    case UCS_ERR_TIMED_OUT: return Status::Timeout(msg);
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
    case UCS_ERR_UNSUPPORTED: return Status::InvalidArgument(msg);
    case UCS_ERR_MESSAGE_TRUNCATED: return Status::Corruption(msg);
    default: return Status::IOError(msg);
  }
}

}  // namespace shoal::transport
