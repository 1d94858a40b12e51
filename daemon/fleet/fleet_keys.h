// Where a fleet keeps things in etcd, and how a published token is written.
// Every key starts with the fleet's prefix:
//   PREFIX/member/NAME                 a running broker (on its lease)
//   PREFIX/leader/ACCOUNT/LEASE        a candidacy to lead ACCOUNT (on its lease);
//                                      the oldest (lowest create revision) leads
//   PREFIX/token/ACCOUNT               the account's token and deadlines, sealed
//   PREFIX/login/ACCOUNT/ID            an operator's login for the leader, sealed
//                                      (on a 60-second lease: spent once or gone)
//   PREFIX/login-result/ID             the leader's answer to it (on the same lease)
//   PREFIX/rejected/ACCOUNT            a follower saw the API reject the token:
//                                      the leader checks it (value: the follower)
#pragma once

#include <string>
#include <string_view>

#include "secret/secret.h"
#include "tokens/fleet_link.h"
#include "util/status.h"

namespace stormbroker {

struct FleetKeys {
  std::string prefix;  // no trailing '/'

  std::string All() const { return prefix + "/"; }
  std::string Member(std::string_view name) const { return prefix + "/member/" + std::string(name); }
  std::string Candidates(std::string_view account) const { return prefix + "/leader/" + std::string(account) + "/"; }
  std::string Token(std::string_view account) const { return prefix + "/token/" + std::string(account); }
  std::string LoginRequests(std::string_view account) const {
    return prefix + "/login/" + std::string(account) + "/";
  }
  std::string LoginResult(std::string_view id) const { return prefix + "/login-result/" + std::string(id); }
  std::string Rejected(std::string_view account) const { return prefix + "/rejected/" + std::string(account); }
  // The associated data a sealed value is bound to: this fleet, this kind of
  // value, this account.
  std::string SealContext(std::string_view kind, std::string_view account) const {
    return "stormbroker fleet v1\n" + prefix + "\n" + std::string(kind) + "\n" + std::string(account);
  }
};

// The end of etcd's range that holds every key starting with `prefix`.
std::string PrefixEnd(std::string prefix);

// A token record: "HARD_MS INACTIVITY_MS\n" then the token, in locked memory.
Secret EncodeTokenRecord(const FleetToken& token);
Result<FleetToken> DecodeTokenRecord(const Secret& record);

}  // namespace stormbroker
