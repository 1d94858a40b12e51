#include "tokens/account_session.h"

#include <gtest/gtest.h>

#include "session_fixture.h"

namespace stormbroker {
namespace {

using testing::FakeScheduler;
using testing::FakeUpstream;
using namespace std::chrono_literals;

constexpr long long kServerNow = 1'900'000'000;

class AccountSessionTest : public testing::SessionTest {
 protected:
  AccountSessionTest() { Create(); }

  // Answers the pending login with a token valid for `granted_seconds`.
  void AnswerLogin(const std::string& token, long long granted_seconds = 600) {
    auto call = upstream_.Take();
    ASSERT_EQ(call.method, "Account/Auth/token");
    ASSERT_EQ(call.credential, "the-password");
    EXPECT_EQ(call.params["timeout"], 600);
    call.done(FakeUpstream::Ok({{"token", token}, {"expires", kServerNow + granted_seconds}}, kServerNow));
  }
};

TEST_F(AccountSessionTest, ThousandConcurrentCallersCauseOneLogin) {
  session_->Start();
  std::vector<std::shared_ptr<Captured>> callers;
  for (int i = 0; i < 1000; ++i) callers.push_back(CallPing());
  ASSERT_EQ(upstream_.Pending(), 1u) << "only the login goes upstream while it runs";
  AnswerLogin("tok-1");
  ASSERT_EQ(upstream_.Pending(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    auto call = upstream_.Take();
    EXPECT_EQ(call.method, "Utilities/Info/ping");
    EXPECT_EQ(call.credential, "tok-1");
    call.done(FakeUpstream::Ok({{"ping", "success"}}));
  }
  for (const auto& c : callers) {
    ASSERT_EQ(c->calls, 1);
    ASSERT_TRUE(c->outcome->ok());
  }
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
}

TEST_F(AccountSessionTest, KeepAliveRunsAroundHalfTheInactivityTimeoutWithTheToken) {
  session_->Start();
  AnswerLogin("tok-1");
  auto due = scheduler_.NextDue();
  ASSERT_TRUE(due);
  auto delay = *due - scheduler_.Now();
  EXPECT_GE(delay, 600s * 0.45 - 1s);
  EXPECT_LE(delay, 600s * 0.55);
  scheduler_.Advance(delay);
  auto keep_alive = upstream_.Take();
  EXPECT_EQ(keep_alive.method, "Account/Auth/token");
  EXPECT_EQ(keep_alive.credential, "tok-1");
  keep_alive.done(FakeUpstream::Ok({{"token", "tok-1"}, {"expires", kServerNow + 900}}, kServerNow + 300));
  EXPECT_TRUE(scheduler_.NextDue());
  EXPECT_EQ(upstream_.Pending(), 0u);
}

TEST_F(AccountSessionTest, ExpiryIsReadAgainstTheServersOwnClock) {
  session_->Start();
  // The server grants 100 s by its own clock (Date header), whatever ours says.
  auto call = upstream_.Take();
  call.done(FakeUpstream::Ok({{"token", "t"}, {"expires", kServerNow + 100}}, kServerNow));
  auto snapshot = session_->Snapshot();
  ASSERT_TRUE(snapshot.inactivity_deadline);
  EXPECT_EQ(*snapshot.inactivity_deadline - scheduler_.WallNow(), std::chrono::system_clock::duration(100s));
  // With so little left of the asked-for 600 s, the server's hard limit is
  // near: the next step is a replacement login, not a keep-alive.
  RunNextTask();
  EXPECT_EQ(upstream_.Take().credential, "the-password");
}

TEST_F(AccountSessionTest, RejectedTokenGetsOneLoginAndTheCallIsRetriedOnce) {
  session_->Start();
  AnswerLogin("tok-1");
  auto caller = CallPing();
  auto first = upstream_.Take();
  first.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  // A keep-alive asks whether the token is really dead: it is.
  auto check = upstream_.Take();
  EXPECT_EQ(check.method, "Account/Auth/token");
  EXPECT_EQ(check.credential, "tok-1");
  check.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  AnswerLogin("tok-2");
  auto retry = upstream_.Take();
  EXPECT_EQ(retry.credential, "tok-2");
  // A second rejection is passed on, not retried again.
  retry.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  ASSERT_EQ(caller->calls, 1);
  ASSERT_TRUE(caller->outcome->ok());
  EXPECT_TRUE((*caller->outcome)->is_error);
}

TEST_F(AccountSessionTest, ARefusedCallDoesNotDropATokenThatAKeepAliveShowsAlive) {
  session_->Start();
  AnswerLogin("tok-1");
  std::vector<std::shared_ptr<Captured>> callers = {CallPing(), CallPing(), CallPing()};
  for (int i = 0; i < 3; ++i) upstream_.Take().done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  // Three refusals, one keep-alive: it answers for them all.
  ASSERT_EQ(upstream_.Pending(), 1u);
  auto check = upstream_.Take();
  EXPECT_EQ(check.method, "Account/Auth/token");
  EXPECT_EQ(check.credential, "tok-1");
  check.done(FakeUpstream::Ok({{"token", "tok-1"}, {"expires", kServerNow + 600}}, kServerNow));
  // Each call is sent once more with the same token; no login.
  ASSERT_EQ(upstream_.Pending(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto retry = upstream_.Take();
    EXPECT_EQ(retry.credential, "tok-1");
    retry.done(FakeUpstream::Ok({{"ping", "success"}}));
  }
  for (const auto& caller : callers) {
    ASSERT_EQ(caller->calls, 1);
    EXPECT_TRUE(caller->outcome->ok());
  }
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
  EXPECT_EQ(upstream_.Pending(), 0u);
}

TEST_F(AccountSessionTest, AKeepAliveThatCannotTellPassesTheRefusalOnAndKeepsTheToken) {
  session_->Start();
  AnswerLogin("tok-1");
  auto caller = CallPing();
  upstream_.Take().done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  upstream_.Take().done(Unavailable("connection reset"));
  ASSERT_EQ(caller->calls, 1);
  ASSERT_TRUE(caller->outcome->ok());
  EXPECT_TRUE((*caller->outcome)->is_error) << "the API's answer, as it came";
  EXPECT_EQ(upstream_.Pending(), 0u) << "no login";
  auto next = CallPing();
  EXPECT_EQ(upstream_.Take().credential, "tok-1");
}

TEST_F(AccountSessionTest, ReloginsAfterRejectedTokensComeAtMostOncePerInterval) {
  session_->Start();
  AnswerLogin("tok-1");
  auto reject_current = [&](const std::string& token) {
    auto call = upstream_.Take();
    EXPECT_EQ(call.credential, token);
    call.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
    auto check = upstream_.Take();
    EXPECT_EQ(check.credential, token);
    check.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  };
  auto first = CallPing();
  reject_current("tok-1");
  AnswerLogin("tok-2");  // the first re-login comes at once
  upstream_.Take().done(FakeUpstream::Ok({{"ping", "success"}}));
  auto second = CallPing();
  reject_current("tok-2");
  EXPECT_EQ(upstream_.Pending(), 0u) << "a second re-login within relogin_interval must wait";
  auto due = scheduler_.NextDue();
  ASSERT_TRUE(due);
  EXPECT_GE(*due - scheduler_.Now(), 59s);
  RunNextTask();
  AnswerLogin("tok-3");
  auto retried = upstream_.Take();
  EXPECT_EQ(retried.credential, "tok-3");
  retried.done(FakeUpstream::Ok({{"ping", "success"}}));
  ASSERT_EQ(second->calls, 1);
  EXPECT_TRUE(second->outcome->ok());
}

TEST_F(AccountSessionTest, RefusedPasswordStopsWithoutRetrying) {
  session_->Start();
  auto waiting = CallPing();
  upstream_.Take().done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  ASSERT_EQ(waiting->calls, 1);
  EXPECT_EQ(waiting->outcome->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(session_->Snapshot().state, AccountState::kLoginFailed);
  scheduler_.Advance(24h);
  EXPECT_EQ(upstream_.Pending(), 0u) << "a refused password must not be retried";
  auto later = CallPing();
  EXPECT_EQ(later->outcome->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(later->outcome->status().message().find("password"), std::string::npos);
  EXPECT_EQ(later->outcome->status().message().find("the-password"), std::string::npos);
}

TEST_F(AccountSessionTest, TransientLoginFailuresBackOffExponentiallyUpToAMinute) {
  session_->Start();
  std::vector<double> delays;
  for (int attempt = 0; attempt < 9; ++attempt) {
    upstream_.Take().done(Unavailable("connection refused"));
    EXPECT_EQ(session_->Snapshot().state, AccountState::kUnreachable);
    auto due = scheduler_.NextDue();
    ASSERT_TRUE(due);
    delays.push_back(std::chrono::duration<double>(*due - scheduler_.Now()).count());
    scheduler_.Advance(*due - scheduler_.Now());
    ASSERT_EQ(upstream_.Pending(), 1u);
  }
  for (size_t i = 0; i < delays.size(); ++i) {
    double cap = std::min(60.0, std::pow(2.0, static_cast<double>(i)));
    EXPECT_GE(delays[i], cap * 0.5 - 0.01) << "attempt " << i;
    EXPECT_LE(delays[i], cap + 0.01) << "attempt " << i;
  }
  AnswerLogin("tok-1");
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
  EXPECT_TRUE(session_->Snapshot().last_error.empty());
}

TEST_F(AccountSessionTest, CallsDuringAnOutageFailFastWithTheReason) {
  session_->Start();
  upstream_.Take().done(Unavailable("upstream https://x/v1/Account/Auth/token: Connection refused"));
  auto caller = CallPing();
  ASSERT_EQ(caller->calls, 1);
  EXPECT_EQ(caller->outcome->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(caller->outcome->status().message().find("Connection refused"), std::string::npos);
}

TEST_F(AccountSessionTest, FailedKeepAliveIsRetriedBeforeTheDeadlineWhileTheTokenServes) {
  session_->Start();
  AnswerLogin("tok-1");
  scheduler_.Advance(*scheduler_.NextDue() - scheduler_.Now());
  upstream_.Take().done(FakeUpstream::Error(503, "LW::Exception::API::Maintenance"));
  auto caller = CallPing();
  auto call = upstream_.Take();
  EXPECT_EQ(call.credential, "tok-1") << "the token still serves";
  call.done(FakeUpstream::Ok({{"ping", "success"}}));
  EXPECT_TRUE(caller->outcome->ok());
  auto due = scheduler_.NextDue();
  ASSERT_TRUE(due);
  EXPECT_LT(*due - scheduler_.Now(), 5s);
  scheduler_.Advance(*due - scheduler_.Now());
  EXPECT_EQ(upstream_.Take().credential, "tok-1");
}

TEST_F(AccountSessionTest, TheCallersDeadlineBoundsTheUpstreamExchange) {
  session_->Start();
  AnswerLogin("tok-1");
  std::optional<Result<ApiOutcome>> late;
  session_->Call("Utilities/Info/ping", nlohmann::json::object(), scheduler_.Now() + 1500ms,
                 [](Result<ApiOutcome>) {});
  upstream_.Take();
  EXPECT_EQ(upstream_.last_timeout, 1500ms);
  session_->Call("Utilities/Info/ping", nlohmann::json::object(), scheduler_.Now() - 1ms,
                 [&](Result<ApiOutcome> outcome) { late.emplace(std::move(outcome)); });
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(upstream_.Pending(), 0u) << "nothing is sent for a caller who already gave up";
}

TEST_F(AccountSessionTest, StopFailsWaitingCalls) {
  session_->Start();
  auto caller = CallPing();
  session_->Stop(false, nullptr);
  ASSERT_EQ(caller->calls, 1);
  EXPECT_EQ(caller->outcome->status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace stormbroker
