// The Storm API emulator's behaviour, with no HTTP: a request in, a reply out.
// It follows ../../shared/STORM_API.md (kept in the project's shared notes):
// HTTP Basic with password or token, the {"params": ...} envelope, tokens with
// an inactivity timeout and a hard limit, exceptions as data.
//
// Thread-safe: the HTTP front serves requests from a thread pool.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_error.h"
#include "users.h"

namespace fake_storm {

struct Request {
  std::string path;           // the method path after the base, e.g. "Utilities/Info/ping"
  std::string authorization;  // the Authorization header, e.g. "Basic ZGVw..."
  std::string body;
};

struct Options {
  std::chrono::seconds hard_limit{12 * 3600};  // a token's life from creation
  long long max_timeout = 3600;                // largest inactivity timeout accepted
  long long default_timeout = 900;
};

class Emulator {
 public:
  Emulator(std::vector<User> users, Options options);

  Reply Handle(const Request& request);

  // {"methods": {"account/auth/token": {"password": 1, "token": 2}, ...},
  //  "auth": {"password": N, "token": N, "rejected": N}}
  nlohmann::json Counters() const;
  // Forgets counters and tokens; users and options stay.
  void Reset();
  // The live tokens: [{"token", "username", "expires", "created"}]. Tests use
  // them to check that no token leaks, and to revoke one.
  nlohmann::json Tokens() const;
  // Kills a token (or all tokens with an empty string), as if it had expired.
  // Returns how many were removed.
  int Revoke(const std::string& token);

 private:
  enum class AuthKind { kPassword, kToken };
  struct Token {
    std::string username;
    std::chrono::system_clock::time_point created;
    std::chrono::system_clock::time_point expires;
    long long timeout;
  };
  struct Context {
    const User* user;
    AuthKind kind;
    std::string token;  // when kind == kToken
    nlohmann::json params;
    std::string method;  // lower case
  };
  using Handler = std::function<Reply(Context&)>;

  std::chrono::system_clock::time_point Now() const { return std::chrono::system_clock::now(); }
  // Sets ctx user/kind/token, or returns the 401 reply. Requires mutex_.
  std::optional<Reply> AuthenticateLocked(const Request& request, Context* ctx);
  Reply TokenMethod(Context& ctx);
  Reply ExpireToken(Context& ctx);
  std::string NewTokenString();
  std::chrono::system_clock::time_point CapExpiry(const Token& token, long long timeout) const;

  const std::vector<User> users_;
  const Options options_;
  std::map<std::string, Handler> methods_;  // keyed by lower-case path

  mutable std::mutex mutex_;
  std::map<std::string, Token> tokens_;
  std::map<std::string, std::map<std::string, long long>> method_counts_;
  std::map<std::string, long long> auth_counts_;
};

}  // namespace fake_storm
