// The Storm API's own wire protocol as the HTTP doors speak it, with no I/O:
// what a request line names, the envelope's params, the answers in the
// API's shapes. The libmicrohttpd plumbing is in http_door.cc and
// http_exchange.cc; every decision is the core's.
//
//   POST /VERSION/Group/Sub/method[.json|.yaml]   body {"params": {...}}
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "observe/audit_log.h"
#include "upstream/storm_codec.h"
#include "util/status.h"

namespace stormbroker::http {

// What the request line names: the API version ("v1" or "bleed", lower
// case), the method path as written, and the encoding of body and answer
// ("json", "yaml", or whatever else the extension said).
struct Target {
  std::string version;
  std::string method;
  std::string encoding = "json";
};
// NOT_FOUND for a path without a version the broker serves.
Result<Target> ParseTarget(std::string_view url);
bool IsKnownEncoding(std::string_view encoding);

// How long the caller will wait for its answer, as the X-Stormbroker-Timeout
// header says it (seconds, a decimal number above 0, at most an hour; as
// curl's --max-time). HTTP has no standard for it; gRPC sends grpc-timeout.
// An empty header: none said. INVALID_ARGUMENT for anything else.
constexpr const char* kTimeoutHeader = "X-Stormbroker-Timeout";
Result<std::optional<std::chrono::milliseconds>> ParseTimeout(std::string_view header);

// The envelope's params (an object; none when the body, the envelope or its
// params are empty or null), parsed within kRequestBounds. INVALID_ARGUMENT
// says what is wrong without quoting the body.
Result<nlohmann::json> ParseParams(std::string_view body, std::string_view encoding);

// An answer for the client: an HTTP status, a body in the API's shapes,
// extra headers.
struct Reply {
  unsigned status = 200;
  nlohmann::json body;
  std::vector<std::pair<std::string, std::string>> headers;
};
// The API's error shape: the class, the message under both keys the API's
// clients read (error_message, full_message), and the class's own keys.
nlohmann::json ErrorBody(const std::string& error_class, const std::string& message,
                         const nlohmann::json& extra = nlohmann::json::object());
// A refusal or failure of the broker's own, in the core's one shape for
// every door (broker/refusal.h), with Retry-After when it says when.
Reply FromStatus(const Status& status);
// The API's answer: its result, or its exception with the upstream's status.
Reply FromApi(const ApiOutcome& outcome);
Reply MethodNotAllowed(const Status& why);  // 405, with Allow: POST
// As the API answers an unknown encoding: 200, in JSON, naming it.
Reply InvalidEncoding(const std::string& encoding);
Reply Undeserializable(const Status& why, std::string_view encoding);  // 400 LW::Exception::Deserialize
// The body as text in `encoding` ("yaml", else JSON), and its content type.
std::pair<std::string, const char*> Render(const Reply& reply, std::string_view encoding);

// A request the door refuses by its protocol's rules: why (audited by the
// core as `decision`), and the answer in the API's shapes.
struct Refusal {
  Decision decision;
  Status why;
  Reply reply;
};
// What the request line and headers say, read before any policy: the
// method must be POST, the path must name a version, the encoding must be
// one the API knows, and the timeout header must be well formed. Whatever
// bytes the caller sent (after percent-decoding), a refusal quotes them only
// through Printable, so it renders. (The body's size is the core's to judge.)
struct Head {
  Target target;
  std::optional<std::chrono::milliseconds> timeout;  // X-Stormbroker-Timeout
  size_t announced_body = 0;                          // Content-Length
};
std::variant<Head, Refusal> ReadHead(std::string_view method, std::string_view url, std::string_view timeout_header,
                                     std::string_view content_length);

}  // namespace stormbroker::http
