// The broker's core: what happens to a request whatever door carried it.
// A door learns the caller from the kernel, turns its protocol into the
// calls below and their answers back into its protocol; it decides nothing
// itself, so a check made here holds on every door at once.
//
// The path of a call, in order; each step may refuse, and a refusal is
// audited, counted and returned for the door to translate:
//   AdmitConnection  the connection, within the caller's and the broker's limits
//   Begin            a request: its place among the caller's calls and in the drain
//   OpenCall         a call of the API's methods, from then on driven by the
//                    core through a CallExchange (broker/call_exchange.h): the
//                    door gives it the head, the body's size, the decoded
//                    params, and renders its answer
//   Login, Logout, ExportToken
//                    an operator's act on an account, decided (the admin
//                    rule, the passcode's shape, the export rule), carried
//                    out and audited here; the door renders the outcome
// The RPCs that only read (ListAccounts, GetStatus, GetMetrics) ask what
// their caller may see (AccountsSeenBy, LoadSeenBy, MetricsSeenBy).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "access/connection_table.h"
#include "access/policy.h"
#include "broker/answer_cache.h"
#include "broker/in_flight.h"
#include "broker/request.h"
#include "config/config.h"
#include "observe/audit_log.h"
#include "observe/logging.h"
#include "observe/metrics.h"
#include "tokens/account_session.h"
#include "upstream/http_engine.h"

namespace stormbroker {

// What a caller asks to do on an account (policy's rules, config/config.h).
enum class Permission {
  kCall,         // call one method (rule: methods)
  kUse,          // use the account at all: see it, ask for a token handle (any rule naming it)
  kAdmin,        // Login, Logout (rule: admin: true)
  kTokenExport,  // read the token itself (rule: token_export: true)
};

// The account a request acts on.
struct Target {
  std::string account;
  std::shared_ptr<AccountSession> session;
  uint32_t share = 1;  // the caller's weight in the line for the API (policy)
};

// A call for the account session, checked.
struct CallArgs {
  std::string method;   // as the caller wrote it
  std::string version;  // the API version (empty: upstream.url's)
  nlohmann::json params = nlohmann::json::object();
  std::optional<Scheduler::Clock::time_point> deadline = {};
  // The door's word that the caller cancelled this call (its connection
  // ending is seen by the core itself); empty when the door cannot tell.
  std::function<bool()> cancelled = {};
  // The caller asked for a fresh answer (Cache-Control: no-cache): neither
  // a stored answer nor a call in flight serves it; its answer is stored.
  bool fresh = false;
};

class CallExchange;
struct CallHead;

class BrokerCore {
 public:
  // `metrics` may be null (nothing counted).
  // `cache` may be null (every call goes upstream).
  // `scheduler` keeps the deadlines of callers waiting for a shared answer;
  // null: they wait for the shared call (unit tests without time).
  // `tunnel_hosts`: the hosts the HTTPS proxy door may tunnel to (on 443).
  BrokerCore(ConnectionTable& connections, const PolicyHolder& policy, const AccountSessions& accounts,
             AuditLog& audit, Metrics* metrics, const LimitsConfig& limits, AnswerCache* cache = nullptr,
             Scheduler* scheduler = nullptr, std::vector<std::string> tunnel_hosts = {});

  // --- connections
  // Takes in connection `fd`, whose other end the kernel says is `caller`.
  // RESOURCE_EXHAUSTED (audited) when the caller or the broker holds as many
  // connections as it may, or the caller its share of the metrics door
  // (kMetricsConnectionsPerUid): the door then closes it.
  Status AdmitConnection(int fd, const Caller& caller, DoorKind door);
  // A connection (or its first request) whose sender the kernel would not
  // name (`why` says what it reported): audited without a uid, never as
  // the uid an orphaned socket shows.
  void RefuseUnidentified(DoorKind door, const Status& why);
  // The door is about to close `fd`.
  void ForgetConnection(int fd);
  // Who is on connection `fd`, without taking a place (health checks).
  std::optional<Caller> CallerOf(int fd) const;

  // --- requests
  // A request for `rpc` on connection `fd`, with its place among the
  // caller's calls and, when `drains`, in the drain (then UNAVAILABLE once
  // the broker is draining). UNAUTHENTICATED for an unknown connection
  // (nobody to audit); RESOURCE_EXHAUSTED or UNAVAILABLE audited.
  Result<Request> Begin(int fd, DoorKind door, Rpc rpc, bool drains);

  // `request` becomes a call of `head.method`, with every check that needs
  // no body made (broker/call_exchange.h). Refused: the request is
  // concluded, its places given back, and why returned.
  Result<CallExchange> OpenCall(Request request, CallHead head);
  // Audits `request` with how it ended: `status`, or the decision already
  // made, and counts it in the metrics. Once; later calls do nothing.
  void Conclude(Request& request, const Status& status);
  // A refusal by a door's own protocol rules (a malformed request line, a
  // body that is not JSON, a browser's Origin): concluded as `decision`
  // with `why`, which is returned.
  Status Refuse(Request& request, Decision decision, Status why);

  // A door's handling of one request (for `rpc`) threw (a defect of the
  // broker's, never the caller's doing): logged (at most once a second per
  // uid) with who sent it and what was thrown, and audited as failed:
  // `request` when the door holds one still unconcluded, else a record of
  // `caller` (or of nobody, when the door never learnt who it was). Returns
  // the INTERNAL status the door answers; the daemon goes on.
  Status Fault(DoorKind door, Rpc rpc, Request* request, const std::optional<Caller>& caller, std::string_view what);

  // The metrics as `request`'s caller may see them (GetMetrics): every
  // broker-wide series, and those of the accounts it may use.
  Exposition MetricsSeenBy(const Request& request) const;
  // The whole text exposition, for a reader a policy rule with metrics:
  // true names (the metrics door); PERMISSION_DENIED, audited, for others.
  Result<std::string> MetricsForReader(Request& request);

  // --- an operator's acts on an account (empty: the only one, when the
  // broker holds one). Each concludes `request` (audited) before it answers.
  // A login: an admin rule, and a passcode of 6 to 8 digits when one is
  // given (empty: the password alone; see AccountSession::Login), then the
  // session's login. `done` gets the account as it stands after, or why not.
  void Login(Request request, const std::string& account, Secret passcode,
             std::function<void(Result<AccountSnapshot>)> done);
  // Expires the account's token upstream (an admin rule).
  void Logout(Request request, const std::string& account, std::function<void(Status)> done);
  // The account's token, for a caller a rule lets export it.
  Result<HeldToken> ExportToken(Request request, const std::string& account);

  // What `request`'s caller may see: the accounts it may use (ListAccounts,
  // GetStatus), and of the callers waiting for the API, itself and the
  // callers of the accounts it administers (GetStatus).
  std::vector<AccountSnapshot> AccountsSeenBy(const Request& request) const;
  std::vector<HttpEngine::CallerLoad> LoadSeenBy(const Request& request,
                                                 std::vector<HttpEngine::CallerLoad> loads) const;

  // A request on a loopback TCP door, which a browser on this machine can
  // reach: refused (PERMISSION_DENIED, audited) unless its Host names the
  // door (one of `door_hosts`) and it has no Origin and is not cross-site
  // (access/browser_check.h). Empty values stand for absent headers.
  // OpenCall refuses a loopback TCP door's request this did not let through.
  Status AdmitFromLoopbackTcp(Request& request, std::string_view host, std::string_view origin,
                              std::string_view sec_fetch_site, const std::vector<std::string>& door_hosts);

  // A CONNECT to `host`:`port` (as the proxy door parsed it): only to a
  // tunnel host on 443, so the broker never connects anywhere else.
  // PERMISSION_DENIED, audited (as "CONNECT host:port"), for any other.
  Status AdmitTunnel(Request& request, const std::string& host, int port);

  // A uid's connections to the metrics door at once.
  static constexpr size_t kMetricsConnectionsPerUid = 4;

  // Whether `caller` may know of `account` (lists, status, health, metrics).
  bool MayUse(const Caller& caller, const std::string& account) const;
  // Whether `caller` administers `account` (may see who else uses it).
  bool MayAdminister(const Caller& caller, const std::string& account) const;

  // Shutdown, once the doors told their clients to go away: true once no
  // request that drains is in flight, false when `bound` passed first;
  // such requests are refused (UNAVAILABLE) from its return on.
  bool Drain(std::chrono::milliseconds bound) { return in_flight_.Drain(bound); }

 private:
  friend class CallExchange;  // its steps, in its order

  // The account named `account` (empty: the only one, when the broker holds
  // one) if `request`'s caller may do `permission` there (`method` for
  // kCall). Refused: INVALID_ARGUMENT (a malformed or ambiguous name),
  // NOT_FOUND, PERMISSION_DENIED; the request is concluded.
  Result<Target> Authorize(Request& request, const std::string& account, Permission permission,
                           const std::string& method = "");

  // A call's checks that need no params: a reserved method
  // (PERMISSION_DENIED), the method's shape (INVALID_ARGUMENT), then
  // Authorize for kCall. Refused: the request is concluded.
  Result<Target> Screen(Request& request, const std::string& account, const std::string& method);
  // The params' size as they go upstream (limits.max_params_size) and their
  // shape (kRequestBounds). Refused: INVALID_ARGUMENT, the request concluded.
  Status CheckParams(Request& request, const nlohmann::json& params);
  // Hands a screened, checked call to the account's session, or answers it
  // with the one answer of identical calls (the cache, when a rule covers
  // it). `done` gets the API's answer (an exception is an answer) or why
  // not (the session's failure); by then the request is concluded and its
  // places given back.
  void Call(Request request, const Target& target, CallArgs args, std::function<void(Result<ApiOutcome>)> done);
  // Request bodies held in memory (limits.body_bytes_per_uid): `bytes` of
  // the caller's are reserved before the door keeps them, and given back
  // when the body is decoded or dropped. RESOURCE_EXHAUSTED, and the request
  // concluded as refused (audited), when the caller would hold more.
  Status ReserveBody(Request& request, size_t bytes);
  void ReleaseBody(const Request& request, size_t bytes);
  // The refusal of a body over limits.max_request_size.
  Status BodyTooLarge() const;
  // What a caller learns of a defect of the broker's own (the log says more).
  static Status BrokerFailed();

  // One caller waiting for a shared answer: answered once, by the shared
  // call or at its own deadline, whichever comes first.
  class SharedWaiter : public std::enable_shared_from_this<SharedWaiter> {
   public:
    explicit SharedWaiter(AnswerCache::Answer answer) : answer_(std::move(answer)) {}
    void Answer(Result<ApiOutcome> outcome, CacheUse use);
    // At `deadline`, DEADLINE_EXCEEDED (as `use`) unless answered before.
    void AnswerAt(Scheduler& scheduler, Scheduler::Clock::time_point deadline, CacheUse use);
    bool answered() const { return answered_.load(); }

   private:
    std::atomic<bool> answered_{false};
    AnswerCache::Answer answer_;  // taken by the first Answer
    std::atomic<Scheduler*> scheduler_{nullptr};
    std::atomic<Scheduler::TaskId> timer_{0};
  };

  Scheduler* const scheduler_;
  const std::vector<std::string> tunnel_hosts_;
  // The account named `name` (or the only one).
  Result<Target> FindAccount(const std::string& name) const;
  // Audits `record` with how it ended and counts it in the metrics.
  void Record(AuditRecord record, const Status& status);

  ConnectionTable& connections_;
  const PolicyHolder& policy_;
  const AccountSessions& accounts_;
  AuditLog& audit_;
  Metrics* const metrics_;
  const size_t max_params_bytes_;
  const size_t max_request_bytes_;
  AnswerCache* const cache_;
  InFlight in_flight_;
  RefusalLog refusal_log_;
};

// "uid 1000 (alice) pid 4242", for log lines about a caller.
std::string DescribeCaller(const Caller& caller);

}  // namespace stormbroker
