// The head of a request to the HTTPS proxy door, read with Node's former
// HTTP parser (libhttp-parser): only as much of the stream as the head
// takes, so that what follows a CONNECT (the client's TLS hello, possibly
// sent at once) is left for the TLS server; and the decision on the
// tunnel's target. Pure: the socket plumbing is in proxy_door.cc.
#pragma once

#include <http_parser.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace stormbroker {

class ConnectHead {
 public:
  // Heads longer than this are refused (any client's CONNECT fits).
  static constexpr size_t kMaxBytes = 8 << 10;

  ConnectHead();
  ConnectHead(const ConnectHead&) = delete;
  ConnectHead& operator=(const ConnectHead&) = delete;

  // Reads the start of `data`, the next bytes of the stream; returns how
  // many belong to the head (all of them until it is complete). Refused
  // (INVALID_ARGUMENT) when the stream is not an HTTP request, or the head
  // is longer than kMaxBytes; then nothing more is read.
  Result<size_t> Feed(std::string_view data);
  bool complete() const { return complete_; }
  // Once complete: a CONNECT (else another method, e.g. a plain proxy GET).
  bool is_connect() const;
  // The request target as sent ("host:port" for CONNECT), bounded.
  const std::string& target() const { return target_; }

 private:
  static int OnUrl(http_parser* parser, const char* at, size_t length);
  static int OnHeadersComplete(http_parser* parser);

  http_parser parser_{};
  http_parser_settings settings_{};
  std::string target_;
  size_t read_ = 0;
  bool complete_ = false;
};

struct TunnelTarget {
  std::string host;  // lower case
  uint16_t port = 0;
};

// The host and port of a CONNECT target ("api.stormondemand.com:443",
// "[::1]:443"); INVALID_ARGUMENT when it is not host:port.
Result<TunnelTarget> ParseTunnelTarget(std::string_view target);

}  // namespace stormbroker
