#include "doors/http/http_protocol.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "broker/refusal.h"
#include "encoding/document_bounds.h"
#include "encoding/yaml_json.h"
#include "util/ascii.h"
#include "util/printable.h"

namespace stormbroker::http {

Result<Target> ParseTarget(std::string_view url) {
  Target target;
  size_t slash = url.find('/', 1);
  if (url.empty() || url[0] != '/' || slash == std::string_view::npos) {
    return NotFound("no API version in the path; the broker serves /v1/Group/Sub/method and /bleed/…");
  }
  target.version = AsciiLower(url.substr(1, slash - 1));
  if (target.version != "v1" && target.version != "bleed") {
    return NotFound("the broker serves the API versions v1 and bleed, not '" + Printable(target.version, 40) + "'");
  }
  target.method = url.substr(slash + 1);
  size_t dot = target.method.rfind('.');
  if (dot != std::string::npos && target.method.find('/', dot) == std::string::npos) {
    target.encoding = AsciiLower(target.method.substr(dot + 1));
    target.method.resize(dot);
  }
  return target;
}

bool IsKnownEncoding(std::string_view encoding) { return encoding == "json" || encoding == "yaml"; }

Result<nlohmann::json> ParseParams(std::string_view body, std::string_view encoding) {
  if (body.empty()) return nlohmann::json::object();
  auto envelope = encoding == "yaml" ? ParseYaml(body, kRequestBounds) : ParseBoundedJson(body, kRequestBounds);
  const std::string failed = "Could not deserialize the request body: ";
  if (!envelope.ok()) return InvalidArgument(failed + envelope.status().message());
  if (!(envelope->is_object() || envelope->is_null())) {
    return InvalidArgument(failed + "expected the envelope {\"params\": {...}} in " + std::string(encoding));
  }
  if (envelope->is_null() || !envelope->contains("params") || (*envelope)["params"].is_null()) {
    return nlohmann::json::object();
  }
  nlohmann::json& params = (*envelope)["params"];
  if (!params.is_object()) return InvalidArgument(failed + "params must be a map");
  if (encoding == "yaml") {
    // JSON's parser refuses text that is not UTF-8; YAML's takes it, and
    // JSON could not carry it upstream (dump() would throw).
    try {
      (void)params.dump();
    } catch (const nlohmann::json::exception&) {
      return InvalidArgument(failed + "a string that is not UTF-8");
    }
  }
  return std::move(params);
}

Result<std::optional<std::chrono::milliseconds>> ParseTimeout(std::string_view header) {
  if (header.empty()) return std::optional<std::chrono::milliseconds>();
  auto bad = [&] {
    return InvalidArgument(std::string(kTimeoutHeader) + " must be the seconds the caller waits, above 0 and at most 3600 (e.g. 2.5)");
  };
  // Digits with at most one dot: strtod alone would take "1e3", "inf" and hex.
  if (header.size() > 12 || std::count(header.begin(), header.end(), '.') > 1 ||
      !std::all_of(header.begin(), header.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; })) {
    return bad();
  }
  double seconds = std::strtod(std::string(header).c_str(), nullptr);
  if (!(seconds > 0 && seconds <= 3600)) return bad();
  return std::optional(std::chrono::milliseconds(std::max<long long>(1, static_cast<long long>(seconds * 1000))));
}

nlohmann::json ErrorBody(const std::string& error_class, const std::string& message, const nlohmann::json& extra) {
  nlohmann::json body = extra.is_object() ? extra : nlohmann::json::object();
  body["error_class"] = error_class;
  body["full_message"] = message;
  body["error_message"] = message;
  return body;
}

Reply FromStatus(const Status& status) {
  RefusalShape shape = ShapeOf(status.code());
  Reply reply{shape.http_status, ErrorBody(shape.error_class, status.message()), {}};
  if (auto after = status.retry_after()) {
    // Retry-After counts whole seconds (RFC 9110 10.2.3): round up, never 0.
    auto seconds = std::max<long long>(1, (after->count() + 999) / 1000);
    reply.headers.emplace_back("Retry-After", std::to_string(seconds));
    reply.body["retry_after"] = seconds;
  }
  return reply;
}

Reply FromApi(const ApiOutcome& outcome) {
  if (!outcome.is_error) {
    Reply reply{200, outcome.result, {}};
    if (outcome.age) reply.headers.emplace_back("Age", std::to_string(outcome.age->count()));  // RFC 9111 5.1
    return reply;
  }
  return {static_cast<unsigned>(outcome.error.http_status),
          ErrorBody(outcome.error.error_class, outcome.error.message, outcome.error.extra), {}};
}

Reply MethodNotAllowed(const Status& why) {
  return {405, ErrorBody("StormBroker::MethodNotAllowed", why.message()), {{"Allow", "POST"}}};
}

Reply InvalidEncoding(const std::string& encoding) {
  return {200,
          ErrorBody("LW::Exception::API::InvalidEncoding", "Invalid encoding: " + encoding, {{"encoding", encoding}}),
          {}};
}

Reply Undeserializable(const Status& why, std::string_view encoding) {
  return {400, ErrorBody("LW::Exception::Deserialize", why.message(), {{"encoding", encoding == "yaml" ? "YAML" : "JSON"}}),
          {}};
}

std::pair<std::string, const char*> Render(const Reply& reply, std::string_view encoding) {
  if (encoding == "yaml") return {RenderYaml(reply.body), "application/yaml"};
  // Bytes that are not UTF-8 become U+FFFD: an answer may quote what a
  // caller sent, and a strict dump() would throw on it.
  return {reply.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json"};
}

std::variant<Head, Refusal> ReadHead(std::string_view method, std::string_view url, std::string_view timeout_header,
                                     std::string_view content_length) {
  if (method != "POST") {
    Status why = InvalidArgument("the Storm API takes POST, not " + Printable(method, 20));
    return Refusal{Decision::kInvalid, why, MethodNotAllowed(why)};
  }
  auto target = ParseTarget(url);
  if (!target.ok()) return Refusal{Decision::kInvalid, target.status(), FromStatus(target.status())};
  Head head{std::move(target).value(), std::nullopt, 0};
  if (!IsKnownEncoding(head.target.encoding)) {
    // The API answers an unknown encoding in JSON.
    std::string shown = Printable(head.target.encoding, 40);
    return Refusal{Decision::kInvalid, InvalidArgument("Invalid encoding: " + shown), InvalidEncoding(shown)};
  }
  auto timeout = ParseTimeout(timeout_header);
  if (!timeout.ok()) return Refusal{Decision::kInvalid, timeout.status(), FromStatus(timeout.status())};
  head.timeout = *timeout;
  head.announced_body = content_length.empty() ? 0 : std::strtoull(std::string(content_length).c_str(), nullptr, 10);
  return head;
}

}  // namespace stormbroker::http
