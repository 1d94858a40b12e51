// Where a fleet keeps things in etcd. Every key starts with the fleet's
// prefix; every value is a sealed record (fleet_records.h) bound to its key:
//   PREFIX/member/NAME                 a running broker (on its lease); body: NAME
//   PREFIX/leader/ACCOUNT/LEASE        a candidacy to lead ACCOUNT, on lease LEASE
//                                      (hex); body: the machine. The oldest (lowest
//                                      create revision) candidacy that opens leads
//   PREFIX/token/ACCOUNT               the account's token and deadlines; issued-at
//                                      is its generation
//   PREFIX/login/ACCOUNT/ID            an operator's login for the leader; body: ID
//                                      and the passcode (on a 60-second lease:
//                                      spent once or gone)
//   PREFIX/login-result/ID             the leader's answer to it (on the same lease)
//   PREFIX/rejected/ACCOUNT            a follower saw the API reject the token: the
//                                      leader checks it; body: the follower
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stormbroker {

struct FleetKeys {
  std::string prefix;  // no trailing '/'

  std::string All() const { return prefix + "/"; }
  std::string Member(std::string_view name) const { return prefix + "/member/" + std::string(name); }
  std::string Candidates(std::string_view account) const { return prefix + "/leader/" + std::string(account) + "/"; }
  std::string Candidacy(std::string_view account, int64_t lease) const;
  std::string Token(std::string_view account) const { return prefix + "/token/" + std::string(account); }
  std::string LoginRequests(std::string_view account) const {
    return prefix + "/login/" + std::string(account) + "/";
  }
  std::string LoginResult(std::string_view id) const { return prefix + "/login-result/" + std::string(id); }
  std::string Rejected(std::string_view account) const { return prefix + "/rejected/" + std::string(account); }
};

// The lease a candidacy key names (its last part, in hex); nothing when it
// names none.
std::optional<int64_t> LeaseOfCandidacy(std::string_view key);

// The end of etcd's range that holds every key starting with `prefix`.
std::string PrefixEnd(std::string prefix);

}  // namespace stormbroker
