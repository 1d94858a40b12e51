// Calls one Storm API method over HTTP: builds BASE/Method, sends the
// envelope with HTTP Basic credentials, decodes the answer.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "secret/secret.h"
#include "upstream/http_engine.h"
#include "upstream/storm_codec.h"

namespace stormbroker {

struct StormReply {
  ApiOutcome outcome;
  std::optional<long long> server_time;  // the API's clock, from the Date header
};

// Called exactly once, on the engine thread; must not block. An error Status
// means the API gave no answer (UNAVAILABLE: transport fault, garbage body).
using StormCallback = std::function<void(Result<StormReply>)>;

// What a reply means for whoever sent the request.
enum class ReplyVerdict {
  kAnswered,           // the API answered without an exception
  kCredentialRefused,  // the API refused the credential sent (password, passcode or token)
  kRefused,            // another exception that will not pass by itself
  kFault,              // no answer, or an exception that may pass (maintenance, 5xx): worth a retry
};
ReplyVerdict ClassifyReply(const Result<StormReply>& reply);

// OK for an answer; otherwise UNAVAILABLE naming the API's exception, or the
// transport's status as it came.
Status ReplyStatus(const Result<StormReply>& reply);

// Who a call authenticates as: the password (with a passcode for two-factor
// logins) or a token.
struct Credentials {
  const std::string& username;
  const Secret& secret;
  const Secret* passcode = nullptr;
};

// How one call goes: what bounds it, which version of the API, whose it is.
struct CallOptions {
  // Bounds the HTTP exchange below the configured upstream timeout (a
  // caller with a deadline); zero means the configured one.
  std::chrono::milliseconds timeout{0};
  // The API version asked for (one word, e.g. "bleed"); empty means the one
  // upstream.url names.
  std::string version = {};
  Lane lane;  // its place in the line (upstream/fair_line.h)
};

// The upstream as the token logic sees it. An interface so that unit tests can
// script the API without a server.
class StormUpstream {
 public:
  virtual ~StormUpstream() = default;
  // `method` must already be validated (slash-separated words).
  virtual void Call(const std::string& method, const nlohmann::json& params, const Credentials& credentials,
                    StormCallback done, CallOptions options) = 0;
};

class StormClient : public StormUpstream {
 public:
  StormClient(HttpEngine& engine, const UpstreamConfig& config);

  void Call(const std::string& method, const nlohmann::json& params, const Credentials& credentials,
            StormCallback done, CallOptions options) override;

 private:
  HttpEngine& engine_;
  std::string base_url_;  // upstream.url, e.g. https://host/v1
  std::string api_root_;  // without its version, e.g. https://host
  std::string passcode_header_;
  std::chrono::milliseconds timeout_;
};

}  // namespace stormbroker
