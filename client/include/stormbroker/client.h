// A small C++ client for stormbrokerd. Its users need no gRPC or protobuf
// types: parameters and results are nlohmann::json.
//
//   auto client = stormbroker::client::Client::Connect("/run/stormbroker/broker.sock");
//   auto outcome = client->Call("prod", "Utilities/Info/ping", {});
//   if (!outcome.ok()) ...               // the broker could not do it
//   else if (outcome->api_error) ...     // the API answered with an exception
//   else use(outcome->result);
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

// Its types live in stormbroker::client, apart from the daemon's own types of
// the same names (stormbroker::ApiError, stormbroker::AccountEvent), which a
// program that links both must never confuse.
namespace stormbroker::client {

// Why the broker could not carry out a request (not an API exception).
enum class ErrorCode {
  kInvalidArgument,     // bad method path, params or account name
  kNotFound,            // no such account
  kPermissionDenied,    // no policy rule admits this caller
  kFailedPrecondition,  // the account holds no usable token; the message says what to do
  kUnavailable,         // the broker or the upstream cannot be reached
  kDeadlineExceeded,
  kResourceExhausted,   // the caller is over one of its limits (connections, calls)
  kOther,
};

struct BrokerError {
  ErrorCode code = ErrorCode::kOther;
  std::string message;
};

template <typename T>
class Outcome {
 public:
  Outcome(T value) : value_(std::move(value)) {}            // NOLINT: implicit by design
  Outcome(BrokerError error) : value_(std::move(error)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(value_); }
  const T& value() const { return std::get<T>(value_); }
  const T* operator->() const { return &std::get<T>(value_); }
  const BrokerError& error() const { return std::get<BrokerError>(value_); }

 private:
  std::variant<T, BrokerError> value_;
};

// An exception the Storm API returned, with every key it sent.
struct ApiError {
  std::string error_class;  // e.g. "LW::Exception::API::InvalidMethod"
  std::string message;
  nlohmann::json extra;     // the class-specific keys (field, method, ...)
  int http_status = 200;
};

struct CallResult {
  std::optional<ApiError> api_error;  // set when the API answered with an exception
  nlohmann::json result;              // the API's answer otherwise
  std::string account;                // the account the call went through
};

struct AccountInfo {
  std::string name;
  std::string username;
  std::string state;  // starting, active, refreshing, needs-passcode, login-failed, unreachable
  std::optional<std::chrono::system_clock::time_point> inactivity_deadline;
  std::optional<std::chrono::system_clock::time_point> hard_deadline;
  std::optional<std::chrono::system_clock::time_point> renew_at;
  std::string last_error;
  std::string warning;
  std::string two_factor;  // none, prompt or totp
  // Fleet mode: this machine's role (leader, follower, stranded) and the
  // machine that leads the account; empty outside fleet mode.
  std::string fleet_role;
  std::string fleet_leader;
  // Set while the API has asked the broker to slow down for this account:
  // when its callers' calls go again.
  std::optional<std::chrono::system_clock::time_point> paused_until;
  // The protocol of the account's last answer from the API ("HTTP/2");
  // empty before the first.
  std::string upstream_protocol;
};

struct AccountEvent {
  std::string account;
  std::string state;
  std::string message;
  std::chrono::system_clock::time_point time;
};

struct Done {};  // success with nothing to return

struct DaemonStatus {
  std::string version;
  std::chrono::system_clock::time_point started_at;
  std::vector<AccountInfo> accounts;  // those the caller may use
  uint64_t audit_records_dropped = 0;
  // Fleet mode only.
  struct Fleet {
    std::string name;  // this machine
    bool connected = false;
    std::string detail;
    std::vector<std::string> members;
  };
  std::optional<Fleet> fleet;
  // Who uses the API now, busiest first: every caller of the accounts this
  // caller administers, and its own uid elsewhere.
  struct CallerLoad {
    std::string account;
    uint32_t uid = 0;
    uint32_t at_api = 0;   // sent to the API, not answered yet
    uint32_t waiting = 0;  // in line for a connection to the API
    std::chrono::milliseconds longest_wait{0};  // the oldest in line
  };
  std::vector<CallerLoad> callers;
  // The HTTPS proxy door, when configured.
  struct HttpsProxy {
    std::string address;             // host:port
    std::vector<std::string> hosts;  // served on port 443
    std::string ca_certificate;      // PEM, for clients to trust
  };
  std::optional<HttpsProxy> https_proxy;
};

// One sample of the broker's metrics, e.g. stormbroker_calls_total with
// {account: prod, method: utilities/info/ping, outcome: ok}.
struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct MetricsSnapshot {
  std::string text;  // Prometheus' text exposition format
  std::vector<MetricSample> samples;
};

struct ConnectOptions {
  // How long a call waits for a broker whose socket exists but that does not
  // answer yet (starting, or restarting), before it fails with
  // kUnavailable. A missing socket fails at once.
  std::chrono::milliseconds wait_for_broker{5000};
};

class Client {
 public:
  // Connects lazily: a bad path shows up as kUnavailable on the first call.
  static std::unique_ptr<Client> Connect(const std::string& socket_path, ConnectOptions options = {});
  virtual ~Client() = default;

  // `account` may be empty when the broker holds one account. `params` must be
  // a JSON object (or null for none). `fresh` asks for an answer from the API
  // itself, never one the broker shares or stores (cache-control: no-cache).
  virtual Outcome<CallResult> Call(const std::string& account, const std::string& method,
                                   const nlohmann::json& params,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                   bool fresh = false) = 0;
  virtual Outcome<std::vector<AccountInfo>> ListAccounts() = 0;
  // An operator's login (needs an admin policy rule). `passcode` for
  // two-factor prompt accounts; ignored by the others.
  // Login, GetToken and a Call with params first check that the socket is
  // the broker's (stormbroker/socket_trust.h): kUnavailable, "not sending
  // ...", and nothing sent, when it is not.
  virtual Outcome<AccountInfo> Login(const std::string& account, const std::string& passcode) = 0;
  // Expires the account's token upstream now (needs an admin policy rule).
  virtual Outcome<Done> Logout(const std::string& account) = 0;
  virtual Outcome<DaemonStatus> GetStatus() = 0;
  // The broker's metrics: the series of the accounts the caller may use,
  // and the broker-wide ones.
  virtual Outcome<MetricsSnapshot> GetMetrics() = 0;
  // The account's token itself (needs a policy rule with token_export: true).
  virtual Outcome<std::string> GetToken(const std::string& account) = 0;
  // Streams account events to `on_event` until it returns false or the
  // stream ends; says why it ended (an error, or kOther with an empty
  // message when on_event stopped it or the broker closed it cleanly).
  virtual BrokerError Watch(const std::function<bool(const AccountEvent&)>& on_event) = 0;
};

}  // namespace stormbroker::client
