// The tokens of one account, made before broken: the current one, which new
// calls lease, and the ones it replaced, kept until their last call is done
// and then expired upstream by the session (AccountSession). Bookkeeping
// only: no I/O, and not thread-safe (the session's mutex guards it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "secret/secret.h"
#include "runtime/scheduler.h"

namespace stormbroker {

class TokenPool {
 public:
  using Clock = Scheduler::Clock;
  // What a keep-alive said of a token the API had refused for a call.
  enum class Check { kAlive, kRejected, kUnknown };
  struct Slot {
    Secret token;
    uint64_t generation = 0;  // set by Install: a later token has a higher one
    Clock::time_point hard_deadline{};
    Clock::time_point inactivity_deadline{};
    int in_flight = 0;  // calls holding the token
    bool retired = false;
    // Calls waiting for the keep-alive that confirms whether the token is
    // alive after the API refused it for one call (empty: none under way).
    std::vector<std::function<void(Check)>> confirm_waiters;
  };

  // The token new calls get; null when there is none.
  const std::shared_ptr<Slot>& current() const { return current_; }
  // Makes `slot` current, with the next generation. Returns the one it
  // replaces (null when none): the caller retires it.
  std::shared_ptr<Slot> Install(std::shared_ptr<Slot> slot);
  // No current token from now on; returns the one there was.
  std::shared_ptr<Slot> TakeCurrent();

  // A call begins with `slot`'s token.
  static void Lease(Slot& slot) { ++slot.in_flight; }
  // A call with `slot`'s token ended. True when that was the last call of a
  // retired token: expire it now.
  bool Release(const std::shared_ptr<Slot>& slot);

  // `slot` was replaced: it may be expired once no call holds it. True when
  // none does (expire it now); otherwise Release says when.
  bool Retire(std::shared_ptr<Slot> slot);
  // Keeps a replaced token in the pool while its expiry waits for something
  // else (a fleet's grace), so that TakeAll still finds it; Forget lets go.
  void Hold(std::shared_ptr<Slot> slot);
  void Forget(const std::shared_ptr<Slot>& slot);

  // Every token held, current and replaced, for a stop that expires them
  // all; the pool holds none afterwards.
  std::vector<std::shared_ptr<Slot>> TakeAll();

 private:
  std::shared_ptr<Slot> current_;
  std::vector<std::shared_ptr<Slot>> replaced_;  // held, or retired with calls in flight
  uint64_t next_generation_ = 1;
};

}  // namespace stormbroker
