// The token lifecycle on a fake clock: renewal before the hard limit (make
// before break), two-factor prompt and TOTP, persistence, logout.
#include <gtest/gtest.h>

#include "session_fixture.h"
#include "secret/base32.h"
#include "tokens/account_session.h"
#include "tokens/totp.h"

namespace stormbroker {
namespace {

using namespace std::chrono_literals;
using testing::FakeUpstream;
using testing::RecordedCall;

class LifecycleTest : public testing::SessionTest {
 protected:
  LifecycleTest() {
    config_.max_lifetime = 3600s;
    config_.renew_before = 600s;
  }
  // As if a previous run had kept token "kept" for `username`, with 500 s of
  // inactivity and 3000 s of life left.
  void KeepToken(const std::string& username) {
    PersistedToken saved;
    saved.username = username;
    saved.token = Secret("kept");
    saved.hard_deadline = ServerNow() + 3000;
    saved.inactivity_deadline = ServerNow() + 500;
    store_.Save("prod", saved);
  }

  long long ServerNow() {
    return std::chrono::duration_cast<std::chrono::seconds>(scheduler_.WallNow().time_since_epoch()).count();
  }
  void Grant(RecordedCall& call, const std::string& token) {
    call.done(FakeUpstream::Ok({{"token", token}, {"expires", ServerNow() + 600}}, ServerNow()));
  }
  // Runs tasks, answering keep-alives for `token`, until a call that is not a
  // keep-alive goes upstream; returns it.
  RecordedCall RunUntilNot(const std::string& keepalive_token) {
    for (int i = 0; i < 200; ++i) {
      while (upstream_.Pending() > 0) {
        auto call = upstream_.Take();
        if (call.method == "Account/Auth/token" && call.credential == keepalive_token) {
          Grant(call, keepalive_token);
          continue;
        }
        return call;
      }
      RunNextTask();
    }
    throw std::runtime_error("nothing but keep-alives");
  }
};

TEST_F(LifecycleTest, RenewsBeforeTheHardLimitMakeBeforeBreak) {
  Create();
  session_->Start();
  auto start = scheduler_.Now();
  auto login = upstream_.Take();
  Grant(login, "old");
  // A call is in flight with the old token when the renewal comes.
  auto in_flight = CallPing();
  auto old_call = upstream_.Take();
  ASSERT_EQ(old_call.credential, "old");

  auto renewal = RunUntilNot("old");
  EXPECT_EQ(renewal.method, "Account/Auth/token");
  EXPECT_EQ(renewal.credential, "the-password");
  auto renewed_after = scheduler_.Now() - start;
  EXPECT_GE(renewed_after, 3600s - 660s - 1s) << "renew_before with up to 10% jitter";
  EXPECT_LE(renewed_after, 3600s - 600s);
  EXPECT_EQ(session_->Snapshot().state, AccountState::kRefreshing);

  // While the renewal runs, callers keep the old token.
  auto during = CallPing();
  auto during_call = upstream_.Take();
  EXPECT_EQ(during_call.credential, "old");
  during_call.done(FakeUpstream::Ok({{"ping", "success"}}));

  Grant(renewal, "new");
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
  auto after = CallPing();
  auto after_call = upstream_.Take();
  EXPECT_EQ(after_call.credential, "new") << "new calls switch to the new token";
  after_call.done(FakeUpstream::Ok({{"ping", "success"}}));
  EXPECT_EQ(upstream_.Pending(), 0u) << "the old token must not be expired while a call still uses it";

  old_call.done(FakeUpstream::Ok({{"ping", "success"}}));
  ASSERT_EQ(upstream_.Pending(), 1u);
  auto expire = upstream_.Take();
  EXPECT_EQ(expire.method, "Account/Auth/expireToken");
  EXPECT_EQ(expire.credential, "old");
  expire.done(FakeUpstream::Ok({{"expired", 1}}));
  EXPECT_TRUE(in_flight->outcome->ok());
  EXPECT_EQ(store_.saved["prod"].token.Reveal(), "new");
}

TEST_F(LifecycleTest, KeepAlivesRunBeforeEachInactivityDeadline) {
  Create();
  session_->Start();
  auto login = upstream_.Take();
  Grant(login, "t");
  auto last = scheduler_.Now();
  for (int i = 0; i < 5; ++i) {
    RunNextTask();
    ASSERT_EQ(upstream_.Pending(), 1u);
    auto keepalive = upstream_.Take();
    EXPECT_EQ(keepalive.credential, "t");
    auto gap = scheduler_.Now() - last;
    EXPECT_GE(gap, 600s * 0.45 - 1s);
    EXPECT_LE(gap, 600s * 0.55);
    last = scheduler_.Now();
    Grant(keepalive, "t");
  }
}

TEST_F(LifecycleTest, RenewalBackoffNeverPassesTheHardLimit) {
  Create();
  session_->Start();
  auto start = scheduler_.Now();
  auto login = upstream_.Take();
  Grant(login, "old");
  auto renewal = RunUntilNot("old");
  int attempts = 0;
  while (true) {
    ASSERT_EQ(renewal.credential, "the-password");
    ++attempts;
    renewal.done(Unavailable("connection refused"));
    EXPECT_LT(scheduler_.Now() - start, 3600s) << "retry scheduled past the hard limit";
    EXPECT_EQ(CallPing()->calls, 0) << "a call waits only for its upstream answer";
    auto ping = upstream_.Take();
    EXPECT_EQ(ping.credential, "old") << "the old token keeps serving";
    ping.done(FakeUpstream::Ok({{"ping", "success"}}));
    if (scheduler_.Now() - start > 3590s) break;
    renewal = RunUntilNot("old");
    if (renewal.method != "Account/Auth/token" || renewal.credential != "the-password") break;
  }
  EXPECT_GE(attempts, 5);
}

TEST_F(LifecycleTest, HardLimitWithoutReplacementDropsTheTokenAndLogsIn) {
  config_.renew_before = 1s;
  Create();
  session_->Start();
  auto login = upstream_.Take();
  Grant(login, "old");
  auto renewal = RunUntilNot("old");
  renewal.done(FakeUpstream::Error(503, "LW::Exception::API::Maintenance"));
  // The retry is capped by the deadline; let the deadline pass unanswered.
  scheduler_.Advance(2s);
  while (upstream_.Pending()) upstream_.Take();  // answers lost in transit
  EXPECT_NE(session_->Snapshot().state, AccountState::kActive);
  EXPECT_FALSE(session_->Snapshot().hard_deadline) << "a dead token is not offered";
}

class TotpAccountTest : public LifecycleTest {
 protected:
  TotpAccountTest() {
    config_.two_factor = TwoFactor::kTotp;
    config_.totp_key = Secret(*DecodeBase32("JBSWY3DPEHPK3PXP"));
  }
  std::string ExpectedCode() {
    return TotpCode(config_.totp_key.Reveal(), TotpStep(ServerNow()));
  }
};

TEST_F(TotpAccountTest, LogsInWithTheCurrentCodeAndNeverReusesAStep) {
  Create();
  session_->Start();
  auto first = upstream_.Take();
  EXPECT_EQ(first.passcode, ExpectedCode());
  // The API rejects the token at once: the re-login must wait for a new step.
  Grant(first, "t1");
  auto caller = CallPing();
  auto call = upstream_.Take();
  call.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  upstream_.Take().done(FakeUpstream::Error(401, "LW::Exception::Authorization"));  // the keep-alive agrees
  EXPECT_EQ(upstream_.Pending(), 0u) << "no second login in the same 30 s step";
  auto step_before = TotpStep(ServerNow());
  RunNextTask();
  ASSERT_EQ(upstream_.Pending(), 1u);
  auto second = upstream_.Take();
  EXPECT_GT(TotpStep(ServerNow()), step_before);
  EXPECT_EQ(second.passcode, ExpectedCode());
  EXPECT_NE(second.passcode, first.passcode);
  Grant(second, "t2");
  auto retried = upstream_.Take();
  EXPECT_EQ(retried.credential, "t2");
  retried.done(FakeUpstream::Ok({{"ping", "success"}}));
  EXPECT_TRUE(caller->outcome->ok());
  EXPECT_EQ(store_.saved["prod"].last_totp_step, TotpStep(ServerNow()));
}

TEST_F(TotpAccountTest, APasscodeIsNotSentInTheLastMomentsOfItsStep) {
  // 29 s into a 30 s step: the login could reach the API after the step
  // ended, where the passcode is refused (and a refused login stops).
  scheduler_.Advance(29s);
  Create();
  session_->Start();
  EXPECT_EQ(upstream_.Pending(), 0u) << "no passcode sent with 1 s left of its step";
  auto step_before = TotpStep(ServerNow());
  RunNextTask();
  auto login = upstream_.Take();
  EXPECT_EQ(TotpStep(ServerNow()), step_before + 1);
  EXPECT_EQ(login.passcode, ExpectedCode());
}

TEST_F(TotpAccountTest, AStepUsedBeforeARestartIsNotUsedAgain) {
  PersistedToken saved;
  saved.username = "deploy-bot";
  saved.last_totp_step = TotpStep(ServerNow());
  store_.Save("prod", saved);
  Create();
  session_->Start();
  EXPECT_EQ(upstream_.Pending(), 0u);
  RunNextTask();
  auto login = upstream_.Take();
  EXPECT_GT(TotpStep(ServerNow()), saved.last_totp_step);
  EXPECT_EQ(login.passcode, ExpectedCode());
}

TEST_F(TotpAccountTest, AStepFromTheFutureInTheStateFileIsNotBelieved) {
  // Trusted, it would hold every login back until a day from now.
  PersistedToken saved;
  saved.username = "deploy-bot";
  saved.token = Secret("planted-token");
  saved.hard_deadline = ServerNow() + 3600;
  saved.inactivity_deadline = ServerNow() + 600;
  saved.last_totp_step = TotpStep(ServerNow()) + 2880;
  store_.Save("prod", saved);
  Create();
  session_->Start();
  EXPECT_EQ(upstream_.Pending(), 0u) << "the token beside the bogus step is not used, nor this step's passcode";
  auto due = scheduler_.NextDue();
  ASSERT_TRUE(due);
  EXPECT_LE(*due - scheduler_.Now(), 31s) << "the next step is waited for, not the file's";
  RunNextTask();
  auto login = upstream_.Take();
  EXPECT_NE(login.credential, "planted-token");
  EXPECT_EQ(login.passcode, ExpectedCode());
}

class PromptTest : public LifecycleTest {
 protected:
  PromptTest() {
    config_.two_factor = TwoFactor::kPrompt;
    config_.max_lifetime = 2h;
  }
  Status LoginWith(const std::string& passcode, const std::function<void(RecordedCall&)>& answer) {
    std::optional<Status> result;
    session_->Login(Secret(passcode), [&](Status s) { result = s; });
    auto call = upstream_.Take();
    EXPECT_EQ(call.passcode, passcode);
    answer(call);
    EXPECT_TRUE(result);
    return result.value_or(Internal("no answer"));
  }
};

TEST_F(PromptTest, WaitsForAnOperatorThenWarnsBeforeTheLimit) {
  Create();
  session_->Start();
  EXPECT_EQ(upstream_.Pending(), 0u) << "no login without a passcode";
  EXPECT_EQ(session_->Snapshot().state, AccountState::kNeedsPasscode);
  auto refused = CallPing();
  ASSERT_EQ(refused->calls, 1);
  EXPECT_EQ(refused->outcome->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused->outcome->status().message().find("stormctl login prod"), std::string::npos);

  auto start = scheduler_.Now();
  ASSERT_TRUE(LoginWith("123456", [&](RecordedCall& c) { Grant(c, "t"); }).ok());
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
  EXPECT_FALSE(session_->Snapshot().renew_at) << "prompt accounts are not renewed unattended";

  std::vector<std::pair<std::chrono::minutes, std::string>> warnings;
  while (session_->Snapshot().state == AccountState::kActive) {
    RunNextTask();
    while (upstream_.Pending()) {
      auto keepalive = upstream_.Take();
      Grant(keepalive, "t");
    }
    std::string warning = session_->Snapshot().warning;
    if (!warning.empty() && (warnings.empty() || warnings.back().second != warning)) {
      warnings.emplace_back(std::chrono::duration_cast<std::chrono::minutes>(2h - (scheduler_.Now() - start)), warning);
    }
  }
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0].first, 60min);
  EXPECT_EQ(warnings[1].first, 15min);
  EXPECT_EQ(warnings[2].first, 5min);
  EXPECT_NE(warnings[2].second.find("stormctl login prod"), std::string::npos);
  EXPECT_EQ(scheduler_.Now() - start, 2h);
  EXPECT_EQ(session_->Snapshot().state, AccountState::kNeedsPasscode);
  auto after = CallPing();
  EXPECT_EQ(after->outcome->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(upstream_.Pending(), 0u);
}

TEST_F(PromptTest, ARefusedPasscodeIsReportedAndNotRetried) {
  Create();
  session_->Start();
  Status status = LoginWith("111111", [](RecordedCall& c) {
    StormReply reply;
    reply.outcome.is_error = true;
    reply.outcome.error = {"LW::Exception::Authorization", "Authorization failed: two-factor passcode already used",
                           nlohmann::json::object(), 401};
    c.done(reply);
  });
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("already used"), std::string::npos) << status.message();
  EXPECT_EQ(session_->Snapshot().state, AccountState::kNeedsPasscode);
  scheduler_.Advance(1h);
  EXPECT_EQ(upstream_.Pending(), 0u);
}

// A restart serves at once with the kept token; a keep-alive confirms it
// meanwhile, without holding any call back.
TEST_F(LifecycleTest, APersistedTokenServesAtOnceAndIsConfirmedMeanwhile) {
  KeepToken("deploy-bot");
  Create();
  session_->Start();
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
  auto check = upstream_.Take();
  EXPECT_EQ(check.method, "Account/Auth/token");
  EXPECT_EQ(check.credential, "kept");
  auto served = CallPing();
  auto call = upstream_.Take();
  EXPECT_EQ(call.credential, "kept") << "the call went out before the check came back";
  call.done(FakeUpstream::Ok({{"ping", "success"}}));
  EXPECT_TRUE(served->outcome->ok());
  Grant(check, "kept");
  auto snapshot = session_->Snapshot();
  EXPECT_EQ(snapshot.state, AccountState::kActive);
  EXPECT_NEAR(std::chrono::duration_cast<std::chrono::seconds>(*snapshot.hard_deadline - scheduler_.WallNow()).count(),
              3000, 1);
}

// Found dead by the check, the kept token costs one login; a call the API
// refused meanwhile is retried once with the new token.
TEST_F(LifecycleTest, ADeadPersistedTokenCostsOneLoginAndNoCall) {
  KeepToken("deploy-bot");
  Create();
  session_->Start();
  auto check = upstream_.Take();
  auto served = CallPing();
  auto refused = upstream_.Take();
  check.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  auto login = upstream_.Take();
  EXPECT_EQ(login.credential, "the-password");
  refused.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  Grant(login, "fresh");
  // The refused call: confirmed dead (a keep-alive with the old token) or
  // straight to the new one; either way it is retried with "fresh".
  for (int i = 0; i < 3 && !served->outcome; ++i) {
    auto next = upstream_.Take();
    if (next.method == "Account/Auth/token") {
      next.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
    } else {
      EXPECT_EQ(next.credential, "fresh");
      next.done(FakeUpstream::Ok({{"ping", "success"}}));
    }
  }
  ASSERT_TRUE(served->outcome.has_value());
  EXPECT_TRUE(served->outcome->ok() && !(*served->outcome)->is_error);
  EXPECT_EQ(upstream_.Pending(), 0u) << "one login, nothing more";
}

TEST_F(LifecycleTest, APersistedTokenOfAnotherUserOrPastItsLimitIsIgnored) {
  KeepToken("someone-else");
  Create();
  session_->Start();
  EXPECT_EQ(upstream_.Take().credential, "the-password");
}

TEST_F(LifecycleTest, TokensServeWhenTheyCannotBePersisted) {
  store_.fail_saves = true;
  Create();
  session_->Start();
  auto login = upstream_.Take();
  Grant(login, "t");
  auto caller = CallPing();
  auto call = upstream_.Take();
  EXPECT_EQ(call.credential, "t");
}

TEST_F(LifecycleTest, LogoutExpiresUpstreamAndTheNextCallLogsIn) {
  Create();
  session_->Start();
  auto login = upstream_.Take();
  Grant(login, "t");
  std::optional<Status> result;
  session_->Logout([&](Status s) { result = s; });
  auto expire = upstream_.Take();
  EXPECT_EQ(expire.method, "Account/Auth/expireToken");
  EXPECT_EQ(expire.credential, "t");
  expire.done(FakeUpstream::Ok({{"expired", 1}}));
  ASSERT_TRUE(result && result->ok());
  EXPECT_TRUE(store_.saved["prod"].token.empty());
  CallPing();
  EXPECT_EQ(upstream_.Take().credential, "the-password");
}

TEST_F(LifecycleTest, StopExpiresTokensWhenAskedAndForgetsThem) {
  Create();
  session_->Start();
  auto login = upstream_.Take();
  Grant(login, "t");
  bool done = false;
  session_->Stop(/*expire_tokens=*/true, [&] { done = true; });
  auto expire = upstream_.Take();
  EXPECT_EQ(expire.credential, "t");
  EXPECT_FALSE(done);
  expire.done(FakeUpstream::Ok({{"expired", 1}}));
  EXPECT_TRUE(done);
  EXPECT_EQ(store_.saved.count("prod"), 0u);
}

TEST_F(LifecycleTest, EventsTellTheStory) {
  Create();
  session_->Start();
  auto login = upstream_.Take();
  Grant(login, "t");
  auto messages = events_.Messages();
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.back(), "token obtained");
  EXPECT_EQ(events_.Last().state, AccountState::kActive);
  for (const auto& m : messages) EXPECT_EQ(m.find("the-password"), std::string::npos);
}

}  // namespace
}  // namespace stormbroker
