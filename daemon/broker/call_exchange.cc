// The path of a call through the core: BrokerCore's steps of it, and the
// exchange that runs them, in their order, for a door (call_exchange.h).
#include "broker/call_exchange.h"

#include <spdlog/spdlog.h>

#include "access/request_check.h"
#include "config/byte_size.h"
#include "encoding/document_bounds.h"
#include "util/printable.h"

namespace stormbroker {

Result<CallExchange> BrokerCore::OpenCall(Request request, CallHead head) {
  AuditRecord& record = request.record();
  record.account = head.account;
  record.method = head.method;
  DoorKind door = request.door();
  if ((door == DoorKind::kHttpTcp || door == DoorKind::kHttpsProxy) && !request.browser_checked_) {
    // A defect of the door's, never the caller's doing: refused, not guessed.
    spdlog::error("{}: a call reached the core without the browser check; refused", DoorName(door));
    return Refuse(request, Decision::kDeny, BrokerFailed());
  }
  // The doors that speak the API's HTTP answer its credential methods
  // themselves; on gRPC they are reserved methods like the others.
  TokenDance dance = door == DoorKind::kGrpc ? TokenDance::kNone : TokenDanceOf(head.method);
  auto target = dance != TokenDance::kNone ? Authorize(request, head.account, Permission::kUse)
                                           : Screen(request, head.account, head.method);
  if (!target.ok()) return target.status();
  CallArgs args{head.method, head.version};
  if (head.timeout) args.deadline = Scheduler::Clock::now() + *head.timeout;
  args.cancelled = std::move(head.cancelled);
  args.fresh = head.fresh;
  CallExchange call(*this, std::move(request), std::move(target).value(), std::move(args), dance);
  if (head.announced_body > max_request_bytes_) return call.Refuse(Decision::kInvalid, BodyTooLarge());
  if (head.announced_body > 0) {
    // Held from the start, so a body the caller could not keep is refused unread.
    if (Status held = ReserveBody(call.request_, head.announced_body); !held.ok()) return held;
    call.reserved_ = head.announced_body;
  }
  return call;
}

Result<Target> BrokerCore::Screen(Request& request, const std::string& account, const std::string& method) {
  if (IsReservedMethod(method)) {
    refusal_log_.Warn(request.caller().uid, "denied: " + DescribeCaller(request.caller()) +
                                                " asked for the reserved method " + Printable(method));
    return Refuse(request, Decision::kDeny, ReservedMethodRefusal(method));
  }
  if (Status shape = CheckMethodPath(method); !shape.ok()) return Refuse(request, Decision::kInvalid, shape);
  return Authorize(request, account, Permission::kCall, method);
}

Status BrokerCore::CheckParams(Request& request, const nlohmann::json& params) {
  AuditRecord& record = request.record();
  record.param_names.clear();
  if (params.is_object()) {
    for (const auto& [name, value] : params.items()) record.param_names.push_back(name);  // sorted: a JSON object
  }
  if (Status shape = CheckBounds(params, kRequestBounds); !shape.ok()) {
    return Refuse(request, Decision::kInvalid, shape);
  }
  if (size_t size = params.dump().size(); size > max_params_bytes_) {
    return Refuse(request, Decision::kInvalid,
                  InvalidArgument("params are larger than limits.max_params_size (" +
                                  FormatByteSize(max_params_bytes_) + " as JSON; these are " +
                                  FormatByteSize(size) + ")"));
  }
  return Status::Ok();
}

void BrokerCore::Call(Request request, const Target& target, CallArgs args,
                      std::function<void(Result<ApiOutcome>)> done) {
  // Shared: std::function needs a copy, and the request is move-only.
  auto held = std::make_shared<Request>(std::move(request));
  auto finish = [this, held, done = std::move(done)](Result<ApiOutcome> outcome, CacheUse use) mutable {
    if (use != CacheUse::kNone) {
      held->record().cache = CacheUseName(use);
      if (metrics_) metrics_->CacheRequest(held->record().account, CacheUseName(use));
    }
    if (outcome.ok() && outcome->is_error) {
      // An API exception is an answer: the call succeeded, and the audit
      // says which exception it was.
      held->record().outcome = Ending::kApiError;
      held->record().error_class = outcome->error.error_class;
    }
    Conclude(*held, outcome.ok() ? Status::Ok() : outcome.status());
    held.reset();  // the caller may start its next call at once
    done(std::move(outcome));
  };
  auto gave_up = [gone = held->ticket()->gone(), cancelled = std::move(args.cancelled)] {
    return gone->load(std::memory_order_relaxed) || (cancelled && cancelled());
  };
  Lane lane;
  lane.uid = held->caller().uid;
  lane.share = target.share;
  auto ttl = cache_ ? cache_->Covers(target.account, args.method) : std::nullopt;
  if (!ttl) {
    // A possible write: once it completes, what the cache holds for the
    // account may be stale.
    lane.abandoned = std::move(gave_up);
    target.session->Call(
        args.method, args.params, args.deadline,
        [this, account = target.account, finish = std::move(finish)](Result<ApiOutcome> outcome) mutable {
          if (cache_) cache_->WriteDone(account);
          finish(std::move(outcome), CacheUse::kNone);
        },
        args.version, std::move(lane));
    return;
  }
  // A shared answer: each waiter is answered once, by the shared call or by
  // its own deadline, whichever comes first; one answered by its deadline
  // has left, so a call that everyone left is given up.
  auto waiter = std::make_shared<SharedWaiter>(std::move(finish));
  auto left = [waiter, gave_up = std::move(gave_up)] { return waiter->answered() || gave_up(); };
  std::string key = cache_->KeyOf(target.account, args.version, args.method, args.params);
  auto joined = cache_->Join(key, target.account, *ttl, args.fresh, [waiter](Result<ApiOutcome> outcome, CacheUse use) {
    waiter->Answer(std::move(outcome), use);
  }, left);
  if (joined.use == CacheUse::kHit) return waiter->Answer(std::move(*joined.stored), CacheUse::kHit);
  if (args.deadline && scheduler_) waiter->AnswerAt(*scheduler_, *args.deadline, joined.use);
  const auto& flight = joined.lead ? joined.lead : joined.joined;
  // The shared call is nobody's: no caller's deadline bounds it (one that
  // bypasses the cache is its caller's own). It waits in the lane of each
  // caller who joins it before it is sent, and leaves the line when the
  // first of them is served, or when everyone waiting for it has left.
  if (!flight || flight->StartedByOther(0)) return;
  auto deadline = joined.use == CacheUse::kBypass ? args.deadline : std::nullopt;
  AnswerCache::Flight::Entry entry = flight->NewEntry();
  lane.abandoned = [flight, entry] { return flight->Abandoned() || flight->StartedByOther(entry); };
  lane.starting = [flight, entry] { return flight->ClaimStart(entry); };
  target.session->Call(
      args.method, args.params, deadline,
      [this, flight, entry](Result<ApiOutcome> outcome) {
        if (flight->TakesOutcome(entry)) cache_->Complete(flight, std::move(outcome));
      },
      args.version, std::move(lane));
}

void BrokerCore::SharedWaiter::Answer(Result<ApiOutcome> outcome, CacheUse use) {
  if (answered_.exchange(true)) return;
  if (Scheduler* scheduler = scheduler_.load()) scheduler->Cancel(timer_.load());
  AnswerCache::Answer answer = std::move(answer_);  // only the first here touches it
  answer(std::move(outcome), use);
}

void BrokerCore::SharedWaiter::AnswerAt(Scheduler& scheduler, Scheduler::Clock::time_point deadline, CacheUse use) {
  std::weak_ptr<SharedWaiter> self = weak_from_this();
  timer_ = scheduler.RunAt(deadline, [self, use] {
    if (auto waiter = self.lock()) {
      waiter->Answer(Status(StatusCode::kDeadlineExceeded,
                            "the caller's deadline passed before the shared answer came; the call goes on for "
                            "the others waiting for it"),
                     use);
    }
  });
  scheduler_ = &scheduler;
  // Answered while the timer was being set: nobody else will cancel it.
  if (answered_.load()) scheduler.Cancel(timer_.load());
}

Status BrokerCore::ReserveBody(Request& request, size_t bytes) {
  uid_t uid = request.caller().uid;
  if (connections_.ReserveBodyBytes(uid, bytes)) return Status::Ok();
  return Refuse(request, Decision::kLimit,
                ResourceExhausted("uid " + std::to_string(uid) +
                                  " holds as many request bytes in the broker as it may (limits.body_bytes_per_uid)"));
}

void BrokerCore::ReleaseBody(const Request& request, size_t bytes) {
  if (bytes > 0) connections_.ReleaseBodyBytes(request.caller().uid, bytes);
}

Status BrokerCore::BodyTooLarge() const {
  return TooLarge("the request body is larger than limits.max_request_size (" + FormatByteSize(max_request_bytes_) +
                  ")");
}

Status CallExchange::Receive(size_t bytes) {
  if (!refused_.ok()) return refused_;
  received_ += bytes;
  if (received_ > core_->max_request_bytes_) return Refuse(Decision::kInvalid, core_->BodyTooLarge());
  if (received_ > reserved_) {
    if (Status held = core_->ReserveBody(request_, received_ - reserved_); !held.ok()) {
      refused_ = held;  // concluded by the core
      GiveBackBody();
      return held;
    }
    reserved_ = received_;
  }
  return Status::Ok();
}

Status CallExchange::Refuse(Decision decision, Status why) {
  refused_ = core_->Refuse(request_, decision, std::move(why));
  GiveBackBody();
  return refused_;
}

void CallExchange::GiveBackBody() {
  if (reserved_ > 0) core_->ReleaseBody(request_, std::exchange(reserved_, 0));
}

void CallExchange::End(nlohmann::json params, Done done) && {
  GiveBackBody();  // decoded: the door no longer holds the body
  if (!refused_.ok()) return done(refused_);
  if (dance_ != TokenDance::kNone) return EndTokenDance(done);
  if (Status checked = core_->CheckParams(request_, params); !checked.ok()) return done(checked);
  args_.params = std::move(params);
  core_->Call(std::move(request_), target_, std::move(args_), std::move(done));
}

void CallExchange::EndTokenDance(const Done& done) {
  ApiOutcome answer;
  if (dance_ == TokenDance::kExpireToken) {
    answer.result = TokenExpired();
  } else {
    auto held = target_.session->CurrentToken();
    if (!held.ok()) {
      core_->Conclude(request_, held.status());
      return done(held.status());
    }
    auto expires = held->snapshot.inactivity_deadline.value_or(std::chrono::system_clock::now());
    answer.result = TokenHandle(std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count());
  }
  core_->Conclude(request_, Status::Ok());
  done(std::move(answer));
}

}  // namespace stormbroker
