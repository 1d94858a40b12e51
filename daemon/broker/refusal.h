// How a refusal or failure of the broker's own reads on every door that
// speaks HTTP: one table from a Status's code to the HTTP status, its reason
// phrase and the error class of the Storm API's error shape, so a refusal
// reads alike whichever door carried it (gRPC carries the code itself).
#pragma once

#include "util/status.h"

namespace stormbroker {

struct RefusalShape {
  unsigned http_status;     // 400 a bad request, 403 not allowed, 404 no such account or version,
                            // 413 too large, 429 over a limit, 503 the upstream unreachable or
                            // the account waiting for a login, 504 too slow, 500 the broker's fault
  const char* reason;       // the status's reason phrase (RFC 9110 15)
  const char* error_class;  // "StormBroker::PermissionDenied", ...
};
// Never throws; kOk has no shape and reads as the broker's fault.
RefusalShape ShapeOf(StatusCode code) noexcept;

}  // namespace stormbroker
