#include "tokens/account_meter.h"

namespace stormbroker {
namespace {

class NoMeter final : public AccountMeter {
 public:
  void Login(const std::string&, Credential, bool, Reply) override {}
  void KeepAlive(const std::string&, Reply) override {}
  void Upstream(const std::string&, std::chrono::steady_clock::duration) override {}
};

}  // namespace

AccountMeter& AccountMeter::None() {
  static NoMeter none;
  return none;
}

AccountMeter::Reply MeterReply(const Result<StormReply>& reply) {
  switch (ClassifyReply(reply)) {
    case ReplyVerdict::kAnswered:
      return AccountMeter::Reply::kOk;
    case ReplyVerdict::kCredentialRefused:
    case ReplyVerdict::kRefused:
      return AccountMeter::Reply::kRefused;
    case ReplyVerdict::kFault:
      break;
  }
  return AccountMeter::Reply::kFailed;
}

AccountMeter::Credential LoginCredential(TwoFactor two_factor) {
  switch (two_factor) {
    case TwoFactor::kTotp:
      return AccountMeter::Credential::kTotp;
    case TwoFactor::kPrompt:
      return AccountMeter::Credential::kPasscode;
    case TwoFactor::kNone:
      break;
  }
  return AccountMeter::Credential::kPassword;
}

}  // namespace stormbroker
