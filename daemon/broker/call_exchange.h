// One call of the API's methods through the broker, driven by the core the
// same way whichever door carried it. A door reads its protocol into a
// CallHead, counts the body as it arrives, decodes it, and renders the
// answer; it runs none of the steps between, so none can be skipped or run
// out of order:
//   BrokerCore::OpenCall  the browser check on a loopback TCP door (it must
//                         have run: AdmitFromLoopbackTcp), the token dance of
//                         the doors that speak the API's HTTP, else the method,
//                         the account and policy (all that needs no body, so a
//                         refused caller's body is never read), and the body
//                         announced, against limits.max_request_size and the
//                         caller's limits.body_bytes_per_uid
//   CallExchange::Receive each piece of the body, against the same two limits
//   CallExchange::End     the params' size and shape, then the account
//                         session's call, or the cache's shared answer, within
//                         the caller's own deadline (its timer is the core's,
//                         shared calls included); or the token dance's answer
// Every refusal is concluded (audited, counted) before the door sees it.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "broker/broker_core.h"
#include "broker/token_dance.h"

namespace stormbroker {

// What a door read of a call before its body, in no protocol's terms.
struct CallHead {
  std::string account = {};  // as the caller named it; empty: the only one
  std::string method = {};   // as written, e.g. "Storm/Server/list"
  std::string version = {};  // the API version; empty: upstream.url's
  // How long the caller waits for its answer (grpc-timeout,
  // X-Stormbroker-Timeout); none said: the API's own time.
  std::optional<std::chrono::milliseconds> timeout = {};
  // The caller asked for a fresh answer (Cache-Control: no-cache).
  bool fresh = false;
  // Body bytes the caller says will follow (Content-Length); 0: unknown or none.
  size_t announced_body = 0;
  // The door's word that the caller cancelled (its connection ending is
  // seen by the core itself); empty when the door cannot tell.
  std::function<bool()> cancelled = {};
};

class CallExchange {
 public:
  using Done = std::function<void(Result<ApiOutcome>)>;

  CallExchange(CallExchange&& other) noexcept
      : core_(other.core_),
        request_(std::move(other.request_)),
        target_(std::move(other.target_)),
        args_(std::move(other.args_)),
        dance_(other.dance_),
        received_(other.received_),
        reserved_(std::exchange(other.reserved_, 0)),  // given back once
        refused_(std::move(other.refused_)) {}
  CallExchange& operator=(CallExchange&&) = delete;
  ~CallExchange() { GiveBackBody(); }

  // `bytes` more of the body arrived (the door keeps them). TOO_LARGE over
  // limits.max_request_size, RESOURCE_EXHAUSTED over the caller's
  // limits.body_bytes_per_uid: concluded, and the door drops the rest.
  Status Receive(size_t bytes);
  // False for a call the broker answers without its params (the token
  // dance): the door need not decode the body.
  bool needs_params() const { return dance_ == TokenDance::kNone; }
  // A refusal by the door's protocol (a body it cannot decode): concluded as
  // `decision` with `why`, which is returned; End is not called then.
  Status Refuse(Decision decision, Status why);
  // The body is complete and decoded into `params` (an object; ignored when
  // !needs_params()). `done` gets the API's answer (an exception is an
  // answer), the broker's own, or why not, exactly once, perhaps before End
  // returns; by then the request is concluded and its places given back.
  void End(nlohmann::json params, Done done) &&;

  const Caller& caller() const { return request_.caller(); }
  // For BrokerCore::Fault, when the door's handling throws.
  Request& request() { return request_; }

 private:
  friend class BrokerCore;
  CallExchange(BrokerCore& core, Request request, Target target, CallArgs args, TokenDance dance)
      : core_(&core), request_(std::move(request)), target_(std::move(target)), args_(std::move(args)), dance_(dance) {}
  void GiveBackBody();
  void EndTokenDance(const Done& done);

  BrokerCore* core_;
  Request request_;
  Target target_;
  CallArgs args_;
  TokenDance dance_;
  size_t received_ = 0;  // body bytes so far
  size_t reserved_ = 0;  // of the caller's limits.body_bytes_per_uid, held until End
  Status refused_;       // set: concluded already; nothing more is done
};

}  // namespace stormbroker
