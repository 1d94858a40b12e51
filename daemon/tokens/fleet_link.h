// What an account session needs from fleet mode (fleet/fleet.h), and the
// roles it plays there. A session without a link is alone: it obtains and
// keeps its own tokens, as on a single machine.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "secret/secret.h"
#include "util/status.h"

namespace stormbroker {

// Who obtains and keeps an account's token.
enum class TokenRole {
  kLead,      // this broker: logs in, keeps alive, renews (alone, or the fleet's leader)
  kFollow,    // the fleet's leader does; its tokens arrive through AccountSession::Adopt
  kStranded,  // cut off from etcd, whatever it was (a leader too): keeps the token it
              // has alive until its hard limit, and never logs in (another machine
              // may be leading meanwhile)
};
// "leader", "follower", "stranded".
const char* TokenRoleName(TokenRole role);

// A token as the fleet passes it around, with its deadlines in wall-clock
// time (the machines of a fleet keep their clocks in sync).
struct FleetToken {
  Secret token;
  std::chrono::system_clock::time_point hard_deadline;
  std::chrono::system_clock::time_point inactivity_deadline;
};

class FleetLink {
 public:
  virtual ~FleetLink() = default;
  // The leading session's token is new or has new deadlines: make it known
  // to the fleet. Called with the session's mutex held: must not block or
  // call back into the session.
  virtual void Publish(const std::string& account, const FleetToken& token) = 0;
  // An operator's login on a machine that does not lead the account: hand
  // it (with the passcode, if any) to the leader. `done` runs once the
  // leader has answered, or with the reason it could not be reached. Called
  // without the session's mutex.
  virtual void ForwardLogin(const std::string& account, Secret passcode, std::function<void(Status)> done) = 0;
  // The API rejected the token a follower was given: ask the leader to check
  // it (with a keep-alive of its own, so that no follower can make it drop a
  // good token). Called with the session's mutex held: must not block.
  virtual void ReportRejected(const std::string& account) = 0;
  // How long a replaced token stays alive upstream after the leader stops
  // handing it out: other machines may still be starting calls with it
  // until they see its successor.
  virtual std::chrono::milliseconds RetireGrace() const = 0;
};

}  // namespace stormbroker
