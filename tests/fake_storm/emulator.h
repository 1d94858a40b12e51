// The Storm API emulator's behaviour, with no HTTP: a request in, a reply out.
// It follows the project's STORM_API.md: HTTP Basic with password (plus a
// TOTP passcode for two-factor users) or token, the {"params": ...} envelope in
// JSON or YAML, tokens with an inactivity timeout and a hard limit, exceptions
// as data; and it misbehaves on command (FaultPlan) for tests.
//
// Thread-safe: the HTTP front serves requests from a thread pool.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <absl/synchronization/mutex.h>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_error.h"
#include "faults.h"
#include "servers.h"
#include "users.h"

namespace fake_storm {

struct Request {
  std::string path;           // the method path after the base, e.g. "Utilities/Info/ping.json"
  std::string authorization;  // the Authorization header, e.g. "Basic ZGVw..."
  std::string passcode;       // the two-factor passcode header; empty when absent
  std::string body;
  std::string version = "v1";  // the API version in the URL: v1 or bleed
};

struct Options {
  std::chrono::seconds hard_limit{12 * 3600};  // a token's life from creation
  long long max_timeout = 3600;                // largest inactivity timeout accepted
  long long default_timeout = 900;
};

class Emulator {
 public:
  Emulator(std::vector<User> users, nlohmann::json servers, Options options);

  // Never blocks on faults: a delay comes back in Reply::delay_ms.
  Reply Handle(const Request& request);

  // The emulator's clock for tokens: the real one plus the shift.
  std::chrono::system_clock::time_point Now() const;
  // Moves the token clock forward (tokens expire as if time had passed).
  // Passcodes keep the real clock, as the broker computes them from its own.
  void ShiftClock(std::chrono::seconds by);
  // How far ShiftClock has moved the token clock in all.
  std::chrono::seconds ClockShift() const;

  // {"methods": {"account/auth/token": {"password": 1, "token": 2}, ...},
  //  "auth": {"password": N, "password+passcode": N, "token": N, "rejected": N},
  //  "logins": {"USERNAME": N, ...},  (Account/Auth/token with the password, per user)
  //  "faults": {"status500": N, ...}}
  nlohmann::json Counters() const;
  // The live tokens: [{"token", "username", "expires", "created"}].
  nlohmann::json Tokens() const;
  // Every token it ever issued, live, expired or revoked (for leak checks).
  nlohmann::json IssuedTokens() const;
  // Kills a token (every token for an empty string); returns how many.
  int Revoke(const std::string& token);
  // Forgets counters, tokens, used passcodes, faults and the clock shift.
  void Reset();
  FaultPlan& faults() { return faults_; }

 private:
  struct Token {
    std::string username;
    std::chrono::system_clock::time_point created;
    std::chrono::system_clock::time_point expires;
    long long timeout;
  };
  struct Context {
    const User* user = nullptr;
    std::string auth_kind;  // password, password+passcode or token
    std::string token;      // when auth_kind == "token"
    std::string version;    // the API version the request named
    nlohmann::json params;
  };
  using Handler = std::function<Reply(Context&)>;

  // Sets ctx user/auth_kind/token, or returns the 401 reply.
  std::optional<Reply> AuthenticateLocked(const Request& request, Context* ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::optional<Reply> CheckPasscodeLocked(const User& user, const std::string& passcode)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // The injected fault for this call, if any, counted.
  std::optional<Fault> TakeFault(const std::string& method, const std::string& secret) ABSL_LOCKS_EXCLUDED(mutex_);
  // Method handlers run with mutex_ held.
  Reply TokenMethod(Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Reply ExpireToken(Context& ctx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::chrono::system_clock::time_point CapExpiry(const Token& token, long long timeout) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::vector<User> users_;
  ServerCatalog servers_ ABSL_GUARDED_BY(mutex_);
  const Options options_;
  std::map<std::string, Handler> methods_;  // keyed by lower-case path
  FaultPlan faults_;

  mutable absl::Mutex mutex_;
  std::chrono::seconds clock_shift_ ABSL_GUARDED_BY(mutex_){0};
  std::map<std::string, Token> tokens_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::string> issued_ ABSL_GUARDED_BY(mutex_);  // every token string handed out
  std::map<std::string, std::set<int64_t>> used_steps_ ABSL_GUARDED_BY(mutex_);  // username → TOTP steps spent
  std::map<std::string, std::map<std::string, long long>> method_counts_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, long long> auth_counts_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, long long> password_logins_ ABSL_GUARDED_BY(mutex_);  // by username
  std::map<std::string, long long> fault_counts_ ABSL_GUARDED_BY(mutex_);
};

// "Basic base64(user:secret)" → {user, secret}; nothing when malformed.
std::optional<std::pair<std::string, std::string>> DecodeBasicAuth(const std::string& header);

}  // namespace fake_storm
