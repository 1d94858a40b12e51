// An account session's part in a fleet, with a recording link in place of
// etcd: a follower never logs in, a new leader takes the fleet's token over
// with one keep-alive, a leader keeps a replaced token alive for the grace,
// and a machine cut off from etcd never uses a token past its hard limit.
#include <gtest/gtest.h>

#include "session_fixture.h"

namespace stormbroker {
namespace {

using testing::FakeUpstream;
using namespace std::chrono_literals;

class RecordingLink : public FleetLink {
 public:
  void Publish(const std::string& account, const FleetToken& token) override {
    published.emplace_back(account, std::string(token.token.Reveal()));
  }
  void ForwardLogin(const std::string& account, Secret passcode, std::function<void(Status)> done) override {
    forwarded.emplace_back(account, std::string(passcode.Reveal()));
    done(Status::Ok());
  }
  void ReportRejected(const std::string& account) override { rejected.push_back(account); }
  std::chrono::milliseconds RetireGrace() const override { return 30s; }

  std::vector<std::pair<std::string, std::string>> published, forwarded;
  std::vector<std::string> rejected;
};

class FleetSessionTest : public testing::SessionTest {
 protected:
  FleetSessionTest() {
    config_.max_lifetime = 3600s;
    config_.renew_before = 600s;
    session_ = std::make_shared<AccountSession>(config_, upstream_, scheduler_, nullptr, &events_, nullptr, &link_);
  }
  // A token the leader published, dying `hard` from now.
  FleetToken Published(const std::string& token, std::chrono::seconds hard = 3000s) {
    auto now = scheduler_.WallNow();
    return {Secret(token), now + hard, now + 500s};
  }
  void AnswerPing(const std::string& expected_token) {
    auto call = upstream_.Take();
    EXPECT_EQ(call.method, "Utilities/Info/ping");
    EXPECT_EQ(call.credential, expected_token);
    call.done(FakeUpstream::Ok({{"ping", "success"}}));
  }

  RecordingLink link_;
};

TEST_F(FleetSessionTest, AFollowerNeverLogsInAndServesWithThePublishedToken) {
  session_->Start();
  EXPECT_EQ(upstream_.Pending(), 0u) << "a follower waits for the leader's token";
  auto early = CallPing();
  ASSERT_EQ(early->calls, 1);
  EXPECT_EQ(early->outcome->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(early->outcome->status().message().find("follows the fleet's leader"), std::string::npos);

  session_->SetRole(TokenRole::kFollow, "b1");
  session_->Adopt(Published("tok-fleet"));
  EXPECT_EQ(session_->Snapshot().state, AccountState::kActive);
  EXPECT_EQ(session_->Snapshot().fleet_role, "follower");
  EXPECT_EQ(session_->Snapshot().fleet_leader, "b1");
  auto caller = CallPing();
  AnswerPing("tok-fleet");
  EXPECT_TRUE(caller->outcome->ok());
  // Nothing of its own until the hard limit: no keep-alive, no renewal.
  RunNextTask();
  EXPECT_EQ(upstream_.Pending(), 0u);
  EXPECT_NE(session_->Snapshot().state, AccountState::kActive) << "the token is gone at its hard limit";
  EXPECT_TRUE(link_.published.empty()) << "only a leader publishes";
}

TEST_F(FleetSessionTest, AFollowerOfAPromptAccountWarnsBeforeTheHardLimitToo) {
  config_.two_factor = TwoFactor::kPrompt;
  session_ = std::make_shared<AccountSession>(config_, upstream_, scheduler_, nullptr, &events_, nullptr, &link_);
  session_->Start();
  session_->Adopt(Published("tok-fleet", 1200s));
  RunNextTask();
  EXPECT_NE(session_->Snapshot().warning.find("expires in"), std::string::npos) << session_->Snapshot().warning;
  EXPECT_NE(session_->Snapshot().warning.find("stormctl login prod"), std::string::npos);
  EXPECT_EQ(upstream_.Pending(), 0u);
}

TEST_F(FleetSessionTest, ANewLeaderTakesTheFleetsTokenOverWithOneKeepAliveAndPublishesIt) {
  session_->Start();
  session_->Adopt(Published("tok-fleet"));
  session_->SetRole(TokenRole::kLead, "b0");
  auto check = upstream_.Take();
  EXPECT_EQ(check.method, "Account/Auth/token");
  EXPECT_EQ(check.credential, "tok-fleet") << "a keep-alive with the token, not a login";
  check.done(FakeUpstream::Ok({{"token", "tok-fleet"}, {"expires", 1'900'000'600}}, 1'900'000'000));
  EXPECT_EQ(upstream_.Pending(), 0u);
  ASSERT_FALSE(link_.published.empty());
  EXPECT_EQ(link_.published.back(), std::make_pair(std::string("prod"), std::string("tok-fleet")));
  auto caller = CallPing();
  AnswerPing("tok-fleet");
  EXPECT_TRUE(caller->outcome->ok());
}

TEST_F(FleetSessionTest, ALeaderExpiresAReplacedTokenOnlyAfterTheGrace) {
  session_->Start();
  session_->SetRole(TokenRole::kLead, "b0");
  auto login = upstream_.Take();
  ASSERT_EQ(login.credential, "the-password");
  login.done(FakeUpstream::Ok({{"token", "tok-1"}, {"expires", 1'900'000'600}}, 1'900'000'000));
  // Keep-alives until the renewal, which publishes the new token.
  while (link_.published.empty() || link_.published.back().second != "tok-2") {
    RunNextTask();
    auto call = upstream_.Take();
    ASSERT_EQ(call.method, "Account/Auth/token");
    bool renewal = call.credential == "the-password";
    call.done(FakeUpstream::Ok({{"token", renewal ? "tok-2" : call.credential}, {"expires", 1'900'000'600}},
                               1'900'000'000));
  }
  scheduler_.Advance(29s);
  EXPECT_EQ(upstream_.Pending(), 0u) << "other machines may still be calling with tok-1";
  scheduler_.Advance(2s);
  auto expire = upstream_.Take();
  EXPECT_EQ(expire.method, "Account/Auth/expireToken");
  EXPECT_EQ(expire.credential, "tok-1");
}

TEST_F(FleetSessionTest, CutOffFromEtcdItKeepsTheTokenAliveButNeverLogsInOrUsesItPastItsLimit) {
  session_->Start();
  session_->Adopt(Published("tok-fleet", 1000s));
  session_->SetRole(TokenRole::kStranded, "b1");
  RunNextTask();
  auto keep_alive = upstream_.Take();
  EXPECT_EQ(keep_alive.credential, "tok-fleet") << "stranded, it keeps the token alive itself";
  keep_alive.done(FakeUpstream::Ok({{"token", "tok-fleet"}, {"expires", 1'900'000'600}}, 1'900'000'000));
  while (session_->Snapshot().state == AccountState::kActive) {
    RunNextTask();
    while (upstream_.Pending() > 0) {
      auto call = upstream_.Take();
      ASSERT_NE(call.credential, "the-password") << "no login while another machine may lead";
      call.done(FakeUpstream::Ok({{"token", "tok-fleet"}, {"expires", 1'900'000'600}}, 1'900'000'000));
    }
  }
  auto late = CallPing();
  ASSERT_EQ(late->calls, 1);
  EXPECT_EQ(late->outcome->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(late->outcome->status().message().find("etcd"), std::string::npos);
  EXPECT_EQ(upstream_.Pending(), 0u);
}

TEST_F(FleetSessionTest, AFollowerHandsAnOperatorsLoginAndARejectedTokenToTheLeader) {
  session_->Start();
  session_->SetRole(TokenRole::kFollow, "b1");
  Status answered = Internal("no answer");
  session_->Login(Secret("123456"), [&](Status status) { answered = status; });
  EXPECT_TRUE(answered.ok());
  ASSERT_EQ(link_.forwarded.size(), 1u);
  EXPECT_EQ(link_.forwarded[0], std::make_pair(std::string("prod"), std::string("123456")));

  session_->Adopt(Published("tok-fleet"));
  auto caller = CallPing();
  upstream_.Take().done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  auto check = upstream_.Take();
  EXPECT_EQ(check.credential, "tok-fleet");
  check.done(FakeUpstream::Error(401, "LW::Exception::Authorization"));
  EXPECT_EQ(link_.rejected, std::vector<std::string>{"prod"});
  EXPECT_EQ(upstream_.Pending(), 0u) << "a follower never logs in itself";
  ASSERT_EQ(caller->calls, 1);
}

}  // namespace
}  // namespace stormbroker
