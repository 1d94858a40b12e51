// What an account session counts for the metrics: its logins, keep-alives
// and the time each API call spent upstream. The broker's Metrics implements
// it; a session without one counts nothing. Called from the engine thread
// and the scheduler's: must not block, and must not call into a session.
#pragma once

#include <chrono>
#include <string>

#include "config/config.h"
#include "upstream/storm_client.h"

namespace stormbroker {

class AccountMeter {
 public:
  // The credential a login spent: the password alone, an operator's
  // passcode, or a passcode the broker made from the TOTP secret.
  enum class Credential { kPassword, kPasscode, kTotp };
  // How the API replied to a login or keep-alive: accepted it; refused it
  // (the credentials, or the token, for good); or no usable reply.
  enum class Reply { kOk, kRefused, kFailed };

  virtual ~AccountMeter() = default;
  // `renewal`: a replacement for a token still serving.
  virtual void Login(const std::string& account, Credential credential, bool renewal, Reply reply) = 0;
  virtual void KeepAlive(const std::string& account, Reply reply) = 0;
  // One exchange of an API call with the upstream, answered or not.
  virtual void Upstream(const std::string& account, std::chrono::steady_clock::duration took) = 0;

  // A meter that counts nothing, for a session given none.
  static AccountMeter& None();
};

// How `reply` to a login or keep-alive counts.
AccountMeter::Reply MeterReply(const Result<StormReply>& reply);
// The credential an account's logins spend.
AccountMeter::Credential LoginCredential(TwoFactor two_factor);

}  // namespace stormbroker
