#include "broker/refusal.h"

namespace stormbroker {

RefusalShape ShapeOf(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kInvalidArgument: return {400, "Bad Request", "StormBroker::InvalidRequest"};
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated: return {403, "Forbidden", "StormBroker::PermissionDenied"};
    case StatusCode::kNotFound: return {404, "Not Found", "StormBroker::NotFound"};
    case StatusCode::kTooLarge: return {413, "Content Too Large", "StormBroker::RequestTooLarge"};
    case StatusCode::kResourceExhausted: return {429, "Too Many Requests", "StormBroker::ResourceExhausted"};
    case StatusCode::kFailedPrecondition: return {503, "Service Unavailable", "StormBroker::NeedsLogin"};
    case StatusCode::kUnavailable: return {503, "Service Unavailable", "StormBroker::Unavailable"};
    case StatusCode::kDeadlineExceeded: return {504, "Gateway Timeout", "StormBroker::DeadlineExceeded"};
    case StatusCode::kOk:
    case StatusCode::kInternal: break;
  }
  return {500, "Internal Server Error", "StormBroker::Internal"};
}

}  // namespace stormbroker
