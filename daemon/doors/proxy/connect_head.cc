#include "doors/proxy/connect_head.h"

#include <algorithm>

#include "util/ascii.h"

namespace stormbroker {
namespace {

constexpr size_t kMaxTarget = 300;  // a DNS name, a colon and a port, with room

}  // namespace

ConnectHead::ConnectHead() {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_url = &ConnectHead::OnUrl;
  settings_.on_headers_complete = &ConnectHead::OnHeadersComplete;
}

int ConnectHead::OnUrl(http_parser* parser, const char* at, size_t length) {
  auto* head = static_cast<ConnectHead*>(parser->data);
  if (head->target_.size() + length > kMaxTarget) return 1;
  head->target_.append(at, length);
  return 0;
}

int ConnectHead::OnHeadersComplete(http_parser* parser) {
  static_cast<ConnectHead*>(parser->data)->complete_ = true;
  // A CONNECT stops the parser here by itself (it is an upgrade); for any
  // other method, pausing stops it too: the door answers and closes.
  if (parser->method != HTTP_CONNECT) http_parser_pause(parser, 1);
  return 0;
}

bool ConnectHead::is_connect() const { return complete_ && parser_.method == HTTP_CONNECT; }

Result<size_t> ConnectHead::Feed(std::string_view data) {
  if (complete_) return size_t{0};
  size_t used = http_parser_execute(&parser_, &settings_, data.data(), data.size());
  http_errno error = HTTP_PARSER_ERRNO(&parser_);
  if (error != HPE_OK && !(error == HPE_PAUSED && complete_)) {
    return InvalidArgument(std::string("not an HTTP proxy request: ") + http_errno_description(error));
  }
  read_ += used;
  if (!complete_ && read_ > kMaxBytes) {
    return InvalidArgument("the request's head is longer than " + std::to_string(kMaxBytes) + " bytes");
  }
  return used;
}

Result<TunnelTarget> ParseTunnelTarget(std::string_view target) {
  http_parser_url url;
  http_parser_url_init(&url);
  if (http_parser_parse_url(target.data(), target.size(), /*is_connect=*/1, &url) != 0 ||
      !(url.field_set & (1 << UF_HOST)) || !(url.field_set & (1 << UF_PORT))) {
    return InvalidArgument("CONNECT needs host:port, such as api.stormondemand.com:443");
  }
  TunnelTarget parsed;
  parsed.host = AsciiLower(target.substr(url.field_data[UF_HOST].off, url.field_data[UF_HOST].len));
  parsed.port = url.port;
  return parsed;
}

}  // namespace stormbroker
