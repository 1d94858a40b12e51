// All upstream HTTP of the daemon goes through one HttpEngine: one curl_multi
// handle, so every transfer shares one connection cache (keep-alive, TLS
// session reuse). Submit sends the request on the caller's thread without
// waiting on the network; one engine thread waits for the replies. No caller
// thread ever blocks on the network.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "secret/secret.h"
#include "upstream/lane.h"
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
  Lane lane;  // whose it is, for the line (upstream/fair_line.h)
};

struct HttpResponse {
  long status = 0;
  std::string body;
  // The server's clock from the Date header (seconds since the epoch), if sent.
  std::optional<long long> server_time;
  // How long the server asked us to wait (Retry-After), if it did.
  std::optional<std::chrono::milliseconds> retry_after;
  // How long the server keeps an idle connection open (Keep-Alive:
  // timeout=N), if it said.
  std::optional<std::chrono::seconds> keep_alive_timeout;
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
    // wait in a fair line (upstream/fair_line.h; up to 16,384, then
    // UNAVAILABLE at once), and time in line counts against a request's
    // timeout.
    size_t max_connections = 64;
    // The largest response body read; a bigger one fails the request
    // (UNAVAILABLE) as soon as it is seen, without holding it.
    size_t max_response_bytes = 32 << 20;
    // The accounts with a cap of their own (accounts.NAME.max_connections).
    std::map<std::string, size_t> account_connections = {};
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

  // Told of each request that waited in line (time from Submit to being
  // sent), and of each pause an account's API asked for. Set before Start.
  class LineMeter {
   public:
    virtual ~LineMeter() = default;
    virtual void Waited(const std::string& account, std::chrono::steady_clock::duration waited) = 0;
    // `wait`: how long the pause holds its callers.
    virtual void Paused(const std::string& account, std::chrono::steady_clock::duration wait) = 0;
  };
  void SetMeter(LineMeter* meter);
  // Told of every answer the API sent (not of transport failures), on the
  // engine's thread with its lock held: it must be quick and must not call
  // the engine. Set before Start.
  using AnswerWatcher = std::function<void(const Lane& lane, const HttpResponse& response)>;
  void SetAnswerWatcher(AnswerWatcher watcher);

  // How loaded the engine is now, for the metrics.
  struct Load {
    size_t busy = 0;       // transfers in libcurl's hands (one connection each)
    size_t waiting = 0;    // requests in line for a connection
    uint64_t refused = 0;  // requests refused at once since the start: the line was full
  };
  Load CurrentLoad() const;
  // One account's part of that, and the end of a pause its API asked for.
  struct AccountLoad {
    size_t busy = 0;
    size_t waiting = 0;
    std::optional<std::chrono::system_clock::time_point> paused_until;
    // The protocol of the account's last answer: "HTTP/1.1", "HTTP/2";
    // empty before the first.
    std::string protocol;
  };
  AccountLoad CurrentLoad(const std::string& account) const;
  // The callers of each account now, busiest first: per account and uid,
  // the requests at the API and in line, and how long the oldest in line
  // has waited. The account's own upkeep is not a caller.
  struct CallerLoad {
    std::string account;
    uid_t uid = 0;
    size_t at_api = 0;
    size_t waiting = 0;
    std::chrono::milliseconds longest{0};
  };
  std::vector<CallerLoad> Callers() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stormbroker
