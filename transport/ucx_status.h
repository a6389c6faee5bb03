// The one place where a UCX status becomes a shoal Status.
#pragma once

#include <ucs/type/status.h>

#include <string_view>

#include "shoal/status.h"

namespace shoal::transport {

// UCS_OK -> OK; unreachable/reset/rejected/canceled/endpoint timeout -> Unavailable;
// UCS_ERR_TIMED_OUT -> Timeout; invalid parameters -> InvalidArgument; truncation -> Corruption;
// no memory / no resource -> Unavailable; else IOError. The message carries ucs_status_string.
Status UcxStatus(ucs_status_t status, std::string_view context);

}  // namespace shoal::transport
