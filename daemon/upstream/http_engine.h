// All upstream HTTP of the daemon goes through one HttpEngine: one curl_multi
// handle, so every transfer shares one connection cache (keep-alive, TLS
// session reuse). Submit sends the request on the caller's thread without
// waiting on the network; one engine thread waits for the replies. No caller
// thread ever blocks on the network.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

struct HttpRequest {
  std::string url;
  std::string body;  // sent as POST with Content-Type: application/json
  // HTTP Basic credentials; `credential` is a password or a token.
  std::string username;
  Secret credential;
  // A two-factor passcode, sent as "passcode_header: passcode" when not empty.
  std::string passcode_header;
  Secret passcode;
  std::chrono::milliseconds timeout{30'000};
};

struct HttpResponse {
  long status = 0;
  std::string body;
  // The server's clock from the Date header (seconds since the epoch), if sent.
  std::optional<long long> server_time;
};

// Called exactly once per request, on the engine thread or inside a call to
// Submit, CancelAll or Stop (for this request or another one), with no engine
// lock held: it must not block, and whoever calls those three must not hold a
// lock that a callback takes.
// An error Status (UNAVAILABLE) means no HTTP response was received; it names
// the URL and the transport fault, never a credential.
using HttpCallback = std::function<void(Result<HttpResponse>)>;

class HttpEngine {
 public:
  struct Options {
    std::string ca_file;  // empty: system CAs. Peer and host verification stay on.
    // Transfers in libcurl's hands at once, one connection each; the rest
    // wait in line (up to 16,384, then UNAVAILABLE at once), and time in
    // line counts against a request's timeout.
    size_t max_connections = 64;
    // The largest response body read; a bigger one fails the request
    // (UNAVAILABLE) as soon as it is seen, without holding it.
    size_t max_response_bytes = 32 << 20;
  };

  explicit HttpEngine(Options options);
  // Stops the thread; requests still in flight fail with UNAVAILABLE.
  ~HttpEngine();
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  Status Start();
  // Thread-safe. After Stop() (or destruction) the callback fails at once.
  void Submit(HttpRequest request, HttpCallback done);
  // Fails every request in flight now with UNAVAILABLE `reason`;
  // later requests run as usual.
  void CancelAll(const std::string& reason);
  void Stop();

  // How loaded the engine is now, for the metrics.
  struct Load {
    size_t busy = 0;       // transfers in libcurl's hands (one connection each)
    size_t waiting = 0;    // requests in line for a connection
    uint64_t refused = 0;  // requests refused at once since the start: the line was full
  };
  Load CurrentLoad() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stormbroker
