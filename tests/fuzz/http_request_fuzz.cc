// Fuzzes the HTTP door as a caller reaches it: raw request bytes, split as
// an HTTP/1.1 server splits them (request line, headers, body) and
// percent-decoded by libmicrohttpd's own function, then read as the door
// reads them (http::ReadHead, the browser checks, the reserved methods, the
// method's shape, the params in JSON and YAML). Every answer the door could
// give is rendered in both encodings: rendering must never throw (one
// request used to end the daemon that way) and the JSON must parse.
#include <microhttpd.h>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "access/browser_check.h"
#include "access/request_check.h"
#include "doors/http/http_protocol.h"

namespace {

using namespace stormbroker;

void Render(const http::Reply& reply) {
  for (const char* encoding : {"json", "yaml"}) {
    auto [text, content_type] = http::Render(reply, encoding);
    if (std::string_view(encoding) == "json" && !nlohmann::json::accept(text)) __builtin_trap();
    (void)content_type;
  }
}

std::string Line(std::string_view& rest) {
  size_t end = rest.find('\n');
  std::string line(rest.substr(0, end));
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::string request_line = Line(rest);
  size_t first = request_line.find(' '), second = request_line.rfind(' ');
  if (first == std::string::npos) return 0;
  std::string method = request_line.substr(0, first);
  std::string url = second > first ? request_line.substr(first + 1, second - first - 1) : request_line.substr(first + 1);
  std::map<std::string, std::string> headers;
  while (!rest.empty()) {
    std::string header = Line(rest);
    if (header.empty()) break;
    size_t colon = header.find(':');
    if (colon == std::string::npos) continue;
    size_t value = header.find_first_not_of(' ', colon + 1);
    headers[header.substr(0, colon)] = value == std::string::npos ? "" : header.substr(value);
  }
  std::string body(rest);
  // As libmicrohttpd hands the door its URL: percent-decoded, up to a NUL.
  url.resize(MHD_http_unescape(url.data()));
  url.resize(strnlen(url.c_str(), url.size()));

  Status browser = CheckBrowserHeaders(headers["Host"], headers["Origin"], headers["Sec-Fetch-Site"],
                                       DoorHosts("127.0.0.1", 8080));
  if (!browser.ok()) Render(http::FromStatus(browser));
  auto read = http::ReadHead(method, url, headers["X-Stormbroker-Timeout"], headers["Content-Length"]);
  if (auto* refusal = std::get_if<http::Refusal>(&read)) {
    Render(refusal->reply);
    return 0;
  }
  const http::Target& target = std::get<http::Head>(read).target;
  if (IsReservedMethod(target.method)) Render(http::FromStatus(ReservedMethodRefusal(target.method)));
  if (Status shape = CheckMethodPath(target.method); !shape.ok()) Render(http::FromStatus(shape));
  auto params = http::ParseParams(body, target.encoding);
  if (!params.ok()) {
    Render(http::Undeserializable(params.status(), target.encoding));
    return 0;
  }
  if (!params->is_object()) __builtin_trap();
  // An answer that echoes what the caller sent (as the API's may).
  Render(http::Reply{200, {{"params", *params}, {"method", target.method}}, {}});
  return 0;
}
