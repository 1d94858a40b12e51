// The broker's core, request in; decision, audit record and metric out, and
// what each door makes of the answer (a gRPC code, an HTTP status in the
// API's shape): a refusal is the same whichever door carried the request,
// because the doors only translate what the core decided.
#include "broker/broker_core.h"
#include "broker/call_exchange.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "doors/grpc/broker_service.h"
#include "doors/http/http_protocol.h"
#include "session_fixture.h"

namespace stormbroker {
namespace {

using testing::FakeUpstream;

constexpr long long kServerNow = 1'900'000'000;

// Keeps every audit line the log writes.
class LinesSink : public AuditSink {
 public:
  explicit LinesSink(std::shared_ptr<std::vector<nlohmann::json>> lines) : lines_(std::move(lines)) {}
  void Write(const std::string& text) override {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines_->push_back(nlohmann::json::parse(line));
  }

 private:
  std::shared_ptr<std::vector<nlohmann::json>> lines_;
};

// One request and all that should come of it.
struct Case {
  const char* name;
  std::string account;
  std::string method;
  nlohmann::json params = nlohmann::json::object();
  // What the fake upstream answers, for a call that gets there.
  std::function<Result<StormReply>()> upstream = nullptr;
  StatusCode code;              // what the core answered
  const char* decision;         // in the audit record
  const char* outcome;          // in the audit record
  const char* metric;           // stormbroker_calls_total's outcome
  grpc::StatusCode grpc;        // the gRPC door's translation
  unsigned http;                // the HTTP doors' translation
};

class BrokerCoreTest : public ::testing::Test {
 protected:
  BrokerCoreTest()
      : lines_(std::make_shared<std::vector<nlohmann::json>>()),
        policy_(std::make_shared<const Policy>(Rules())),
        connections_(Limits(), 100),
        audit_(std::make_unique<LinesSink>(lines_), {.refusals_per_second = 1000, .refusal_burst = 1000}),
        metrics_({"prod", "staging"}),
        core_(connections_, policy_, sessions_, audit_, &metrics_, Limits(), nullptr, nullptr,
              {"api.stormondemand.com"}) {
    for (const char* name : {"prod", "staging"}) {
      AccountConfig account;
      account.name = name;
      account.username = std::string(name) + "-bot";
      account.password = Secret("pw");
      sessions_[name] = std::make_shared<AccountSession>(account, upstream_, scheduler_, nullptr, nullptr);
      sessions_[name]->Start();
      auto login = upstream_.Take();
      login.done(FakeUpstream::Ok({{"token", "t"}, {"expires", kServerNow + 600}}, kServerNow));
    }
    int pair[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    fd_ = pair[0];
    other_end_ = pair[1];
    caller_.uid = 1000;
    caller_.user = "alice";
    EXPECT_TRUE(core_.AdmitConnection(fd_, caller_, DoorKind::kGrpc).ok());
  }
  ~BrokerCoreTest() override {
    for (auto& [name, session] : sessions_) session->Stop(false, nullptr);
    close(fd_);
    close(other_end_);
  }

  static LimitsConfig Limits() {
    LimitsConfig limits;
    limits.calls_per_uid = 2;
    limits.max_params_bytes = 1024;
    limits.body_bytes_per_uid = 100;
    limits.max_request_bytes = 150;
    return limits;
  }
  // alice (uid 1000) may call Utilities/Info/* on prod.
  static std::vector<PolicyRule> Rules() {
    PolicyRule rule;
    rule.line = 7;
    rule.uids = {1000};
    rule.accounts = {"prod"};
    rule.methods = {"Utilities/Info/*"};
    return {rule};
  }

  // Runs `c` through the core as a door does, and returns what the core answered.
  Status Run(const Case& c) {
    auto request = core_.Begin(fd_, DoorKind::kGrpc, Rpc::kCall, /*drains=*/true);
    if (!request.ok()) return request.status();
    auto call = core_.OpenCall(std::move(request).value(), CallHead{c.account, c.method});
    if (!call.ok()) return call.status();
    std::optional<Result<ApiOutcome>> answer;
    std::move(*call).End(c.params, [&](Result<ApiOutcome> outcome) { answer.emplace(std::move(outcome)); });
    if (!answer) {
      auto sent = upstream_.Take();
      sent.done(c.upstream());
    }
    if (!answer->ok()) return answer->status();
    return Status::Ok();
  }

  // The last audit record, once the writer has had it.
  nlohmann::json LastRecord() {
    for (int i = 0; i < 200 && lines_->size() == seen_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(lines_->size(), seen_ + 1) << "one audit record per request";
    seen_ = lines_->size();
    return lines_->empty() ? nlohmann::json() : lines_->back();
  }

  std::shared_ptr<std::vector<nlohmann::json>> lines_;
  size_t seen_ = 0;
  FakeUpstream upstream_;
  testing::FakeScheduler scheduler_;
  AccountSessions sessions_;
  PolicyHolder policy_;
  ConnectionTable connections_;
  AuditLog audit_;
  Metrics metrics_;
  BrokerCore core_;
  Caller caller_;
  int fd_ = -1, other_end_ = -1;
};

TEST_F(BrokerCoreTest, EveryDoorRefusesAndAnswersAlike) {
  auto ok = [] { return FakeUpstream::Ok({{"ping", "success"}}); };
  nlohmann::json deep = 1;
  for (int i = 0; i < 70; ++i) deep = nlohmann::json::array({deep});
  const std::vector<Case> cases = {
      {"allowed", "prod", "Utilities/Info/ping", {}, ok, StatusCode::kOk, "allow", "ok", "ok", grpc::StatusCode::OK, 200},
      {"api exception", "prod", "Utilities/Info/nosuch", {},
       [] { return FakeUpstream::Error(200, "LW::Exception::API::InvalidMethod"); }, StatusCode::kOk, "allow",
       "api_error", "api_error", grpc::StatusCode::OK, 200},
      {"upstream down", "prod", "Utilities/Info/ping", {}, [] { return Result<StormReply>(Unavailable("down")); },
       StatusCode::kUnavailable, "allow", "failed", "unavailable", grpc::StatusCode::UNAVAILABLE, 503},
      {"reserved method", "prod", "account/auth/TOKEN.json", {}, nullptr, StatusCode::kPermissionDenied, "deny",
       "failed", "denied", grpc::StatusCode::PERMISSION_DENIED, 403},
      {"no rule", "prod", "Storm/Server/list", {}, nullptr, StatusCode::kPermissionDenied, "deny", "failed", "denied",
       grpc::StatusCode::PERMISSION_DENIED, 403},
      {"no rule for the account", "staging", "Utilities/Info/ping", {}, nullptr, StatusCode::kPermissionDenied, "deny",
       "failed", "denied", grpc::StatusCode::PERMISSION_DENIED, 403},
      {"bad path", "prod", "Utilities/../ping", {}, nullptr, StatusCode::kInvalidArgument, "invalid", "failed",
       "invalid", grpc::StatusCode::INVALID_ARGUMENT, 400},
      {"no such account", "nosuch", "Utilities/Info/ping", {}, nullptr, StatusCode::kNotFound, "invalid", "failed",
       "invalid", grpc::StatusCode::NOT_FOUND, 404},
      {"ambiguous account", "", "Utilities/Info/ping", {}, nullptr, StatusCode::kInvalidArgument, "invalid", "failed",
       "invalid", grpc::StatusCode::INVALID_ARGUMENT, 400},
      {"params too large", "prod", "Utilities/Info/ping", {{"blob", std::string(2000, 'x')}}, nullptr,
       StatusCode::kInvalidArgument, "invalid", "failed", "invalid", grpc::StatusCode::INVALID_ARGUMENT, 400},
      {"params too deep", "prod", "Utilities/Info/ping", {{"a", deep}}, nullptr, StatusCode::kInvalidArgument,
       "invalid", "failed", "invalid", grpc::StatusCode::INVALID_ARGUMENT, 400},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Status answered = Run(c);
    EXPECT_EQ(answered.code(), c.code) << answered.message();
    nlohmann::json record = LastRecord();
    EXPECT_EQ(record.value("decision", ""), c.decision) << record.dump();
    EXPECT_EQ(record.value("outcome", ""), c.outcome) << record.dump();
    EXPECT_EQ(record.value("uid", -1), 1000);
    EXPECT_EQ(record.value("listener", ""), "grpc");
    if (c.code == StatusCode::kOk) {
      EXPECT_EQ(record.value("rule_line", 0), 7);
    }
    EXPECT_EQ(ToGrpc(answered).error_code(), c.grpc);
    if (!answered.ok()) {
      http::Reply reply = http::FromStatus(answered);
      EXPECT_EQ(reply.status, c.http);
      EXPECT_EQ(reply.body["full_message"], answered.message()) << "both doors say the same";
    }
    std::string exposition = metrics_.Collect().Text();
    EXPECT_NE(exposition.find(std::string("outcome=\"") + c.metric + "\""), std::string::npos) << exposition;
  }
}

TEST_F(BrokerCoreTest, OverTheUidsCallsOrDrainingIsALimitAuditedOnce) {
  auto first = core_.Begin(fd_, DoorKind::kHttpUnix, Rpc::kCall, true);
  auto second = core_.Begin(fd_, DoorKind::kHttpUnix, Rpc::kCall, true);
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = core_.Begin(fd_, DoorKind::kHttpUnix, Rpc::kCall, true);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(http::FromStatus(third.status()).status, 429u);
  nlohmann::json record = LastRecord();
  EXPECT_EQ(record["decision"], "limit");
  EXPECT_EQ(record["listener"], "http-unix");
  // Requests given back: places free again. Draining refuses new ones.
  { auto done = std::move(first).value(); }
  EXPECT_FALSE(core_.Drain(std::chrono::milliseconds(1))) << "one request is still in flight";
  auto during = core_.Begin(fd_, DoorKind::kGrpc, Rpc::kCall, true);
  ASSERT_FALSE(during.ok());
  EXPECT_EQ(during.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(LastRecord()["decision"], "limit");
  { auto done = std::move(second).value(); }
  EXPECT_TRUE(core_.Drain(std::chrono::milliseconds(1)));
  // Health and lists do not drain.
  EXPECT_TRUE(core_.Begin(fd_, DoorKind::kGrpc, Rpc::kListAccounts, false).ok());
}

// A door holds a body's bytes only once the core took them in: the
// request's size and the caller's budget are the core's, and so are the
// refusals.
TEST_F(BrokerCoreTest, ABodyIsTakenWithinTheRequestSizeAndTheCallersBudget) {
  auto open = [&](size_t announced) {
    auto request = core_.Begin(fd_, DoorKind::kHttpUnix, Rpc::kCall, false);
    EXPECT_TRUE(request.ok());
    return core_.OpenCall(std::move(request).value(), CallHead{"prod", "Utilities/Info/ping", "", std::nullopt,
                                                                false, announced});
  };
  {
    auto first = open(60);
    ASSERT_TRUE(first.ok()) << first.status().message();
    auto second = open(0);
    ASSERT_TRUE(second.ok());
    EXPECT_TRUE(second->Receive(30).ok());
    Status over = second->Receive(20);
    EXPECT_EQ(over.code(), StatusCode::kResourceExhausted);
    EXPECT_NE(over.message().find("limits.body_bytes_per_uid"), std::string::npos) << over.message();
    nlohmann::json record = LastRecord();
    EXPECT_EQ(record["decision"], "limit") << record.dump();
    EXPECT_EQ(record["listener"], "http-unix");
    EXPECT_EQ(second->Receive(1).code(), StatusCode::kResourceExhausted) << "refused once, refused for good";
  }
  auto third = open(100);
  EXPECT_TRUE(third.ok()) << "given back, the bytes are the caller's again";
  {
    auto done = std::move(third).value();
  }
  auto announced = open(151);
  ASSERT_FALSE(announced.ok());
  EXPECT_EQ(announced.status().code(), StatusCode::kTooLarge);
  EXPECT_NE(announced.status().message().find("limits.max_request_size (150 bytes)"), std::string::npos)
      << announced.status().message();
  EXPECT_EQ(LastRecord()["decision"], "invalid");
  auto streamed = open(0);
  ASSERT_TRUE(streamed.ok());
  EXPECT_TRUE(streamed->Receive(90).ok());
  EXPECT_EQ(streamed->Receive(61).code(), StatusCode::kTooLarge) << "a body without a length, over the size as it comes";
}

// A loopback TCP door's call reaches the core only through the browser
// check: a door that skips it has every call refused, never one let through.
TEST_F(BrokerCoreTest, ACallOnALoopbackTcpDoorWithoutTheBrowserCheckIsRefused) {
  auto skipped = core_.Begin(fd_, DoorKind::kHttpTcp, Rpc::kCall, false);
  ASSERT_TRUE(skipped.ok());
  auto call = core_.OpenCall(std::move(skipped).value(), CallHead{"prod", "Utilities/Info/ping"});
  ASSERT_FALSE(call.ok());
  EXPECT_EQ(call.status().code(), StatusCode::kInternal);
  EXPECT_EQ(LastRecord()["decision"], "deny");
  auto checked = core_.Begin(fd_, DoorKind::kHttpTcp, Rpc::kCall, false);
  ASSERT_TRUE(checked.ok());
  ASSERT_TRUE(core_.AdmitFromLoopbackTcp(*checked, "127.0.0.1:8080", "", "", {"127.0.0.1:8080"}).ok());
  EXPECT_TRUE(core_.OpenCall(std::move(checked).value(), CallHead{"prod", "Utilities/Info/ping"}).ok());
}

// The API's credential methods: answered by the broker on the doors that
// speak the API's HTTP (the token stays inside), reserved on gRPC.
TEST_F(BrokerCoreTest, TheTokenDanceIsAnsweredOnTheHttpDoorsAndRefusedOnGrpc) {
  auto http = core_.Begin(fd_, DoorKind::kHttpUnix, Rpc::kCall, false);
  ASSERT_TRUE(http.ok());
  auto call = core_.OpenCall(std::move(http).value(), CallHead{"prod", "Account/Auth/token"});
  ASSERT_TRUE(call.ok()) << call.status().message();
  EXPECT_FALSE(call->needs_params());
  std::optional<Result<ApiOutcome>> answer;
  std::move(*call).End({}, [&](Result<ApiOutcome> outcome) { answer.emplace(std::move(outcome)); });
  ASSERT_TRUE(answer && answer->ok());
  EXPECT_EQ((*answer)->result["token"].get<std::string>().size(), 32u);
  EXPECT_GT((*answer)->result["expires"].get<long long>(), static_cast<long long>(time(nullptr)))
      << "the account's inactivity deadline";
  EXPECT_NE((*answer)->result["token"], "t") << "never the account's token";
  EXPECT_EQ(LastRecord()["outcome"], "ok");
  auto grpc = core_.Begin(fd_, DoorKind::kGrpc, Rpc::kCall, false);
  ASSERT_TRUE(grpc.ok());
  auto refused = core_.OpenCall(std::move(grpc).value(), CallHead{"prod", "Account/Auth/token"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(BrokerCoreTest, ATunnelGoesOnlyToATunnelHostOnPort443) {
  auto allowed = core_.Begin(fd_, DoorKind::kHttpsProxy, Rpc::kConnect, false);
  ASSERT_TRUE(allowed.ok());
  EXPECT_TRUE(core_.AdmitTunnel(*allowed, "api.stormondemand.com", 443).ok());
  for (auto [host, port] : std::vector<std::pair<std::string, int>>{{"api.stormondemand.com", 80},
                                                                    {"api.stormondemand.com", 8443},
                                                                    {"127.0.0.1", 443},
                                                                    {"::1", 443},
                                                                    {"evil.example", 443},
                                                                    {"api.stormondemand.com.evil.example", 443}}) {
    auto request = core_.Begin(fd_, DoorKind::kHttpsProxy, Rpc::kConnect, false);
    ASSERT_TRUE(request.ok());
    Status refused = core_.AdmitTunnel(*request, host, port);
    EXPECT_EQ(refused.code(), StatusCode::kPermissionDenied) << host << ":" << port;
    nlohmann::json record = LastRecord();
    EXPECT_EQ(record["decision"], "deny") << record.dump();
    EXPECT_EQ(record["method"], "CONNECT " + host + ":" + std::to_string(port)) << record.dump();
  }
}

TEST_F(BrokerCoreTest, AnUnidentifiedCallerIsAuditedWithoutAUid) {
  core_.RefuseUnidentified(DoorKind::kHttpTcp, PermissionDenied("the client's socket is TIME-WAIT with no owner"));
  nlohmann::json record = LastRecord();
  EXPECT_FALSE(record.contains("uid")) << record.dump();
  EXPECT_EQ(record["decision"], "unidentified");
  EXPECT_EQ(record["rpc"], "connect");
  EXPECT_NE(metrics_.Collect().Text().find(R"(stormbroker_caller_refusals_total{door="http-tcp",reason="unidentified"} 1)"),
            std::string::npos);
}

// What a door's handling of a request threw: the request (or, without one,
// its caller) is audited once as failed, for the RPC it was, and the door
// answers INTERNAL without quoting what was thrown.
TEST_F(BrokerCoreTest, AFaultIsAuditedOnceAsItsCallersFailure) {
  auto request = core_.Begin(fd_, DoorKind::kHttpUnix, Rpc::kCall, /*drains=*/true);
  ASSERT_TRUE(request.ok());
  Status failed = core_.Fault(DoorKind::kHttpUnix, Rpc::kCall, &*request, std::nullopt, "type_error.316 \xff");
  EXPECT_EQ(failed.code(), StatusCode::kInternal);
  EXPECT_EQ(failed.message().find("316"), std::string::npos) << "the caller learns nothing of the fault";
  nlohmann::json record = LastRecord();
  EXPECT_EQ(record["uid"], 1000);
  EXPECT_EQ(record["rpc"], "Call");
  EXPECT_EQ(record["outcome"], "failed");
  core_.Conclude(*request, Status::Ok());  // concluded already: nothing more
  core_.Fault(DoorKind::kGrpc, Rpc::kLogin, nullptr, caller_, "boom");
  record = LastRecord();
  EXPECT_EQ(record["uid"], 1000);
  EXPECT_EQ(record["rpc"], "Login");
  EXPECT_EQ(record["listener"], "grpc");
}

TEST_F(BrokerCoreTest, AnOperatorsActsAreDecidedAndAuditedByTheCore) {
  // alice may only call: each act is refused by its own rule, and audited.
  auto begin = [&](int fd, Rpc rpc) { return std::move(core_.Begin(fd, DoorKind::kGrpc, rpc, true)).value(); };
  std::optional<Status> logged_out;
  core_.Logout(begin(fd_, Rpc::kLogout), "prod", [&](Status status) { logged_out = status; });
  ASSERT_TRUE(logged_out.has_value());
  EXPECT_EQ(logged_out->code(), StatusCode::kPermissionDenied);
  EXPECT_NE(logged_out->message().find("admin: true"), std::string::npos) << logged_out->message();
  EXPECT_EQ(LastRecord()["decision"], "deny");
  auto token = core_.ExportToken(begin(fd_, Rpc::kGetToken), "prod");
  EXPECT_EQ(token.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(LastRecord()["rpc"], "GetToken");

  // bob administers staging and may export its token.
  PolicyRule admin;
  admin.line = 9;
  admin.uids = {1001};
  admin.accounts = {"staging"};
  admin.admin = admin.token_export = true;
  std::vector<PolicyRule> rules = Rules();
  rules.push_back(admin);
  policy_.Set(std::make_shared<const Policy>(rules));
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  Caller bob;
  bob.uid = 1001;
  bob.user = "bob";
  ASSERT_TRUE(core_.AdmitConnection(pair[0], bob, DoorKind::kGrpc).ok());

  std::optional<Result<AccountSnapshot>> login;
  core_.Login(begin(pair[0], Rpc::kLogin), "staging", Secret("12ab"), [&](auto account) { login = account; });
  ASSERT_TRUE(login.has_value());
  EXPECT_EQ(login->status().code(), StatusCode::kInvalidArgument) << "a passcode is 6 to 8 digits";
  EXPECT_EQ(LastRecord()["decision"], "invalid");

  token = core_.ExportToken(begin(pair[0], Rpc::kGetToken), "staging");
  ASSERT_TRUE(token.ok()) << token.status().message();
  EXPECT_EQ(token->token.Reveal(), "t");
  nlohmann::json exported = LastRecord();
  EXPECT_EQ(exported["outcome"], "ok");
  EXPECT_EQ(exported["uid"], 1001);

  logged_out.reset();
  core_.Logout(begin(pair[0], Rpc::kLogout), "staging", [&](Status status) { logged_out = status; });
  EXPECT_FALSE(logged_out.has_value()) << "answered once the API expired the token";
  upstream_.Take().done(FakeUpstream::Ok(nlohmann::json::object(), kServerNow));
  ASSERT_TRUE(logged_out.has_value());
  EXPECT_TRUE(logged_out->ok()) << logged_out->message();
  EXPECT_EQ(LastRecord()["rpc"], "Logout");
  core_.ForgetConnection(pair[0]);
  close(pair[0]);
  close(pair[1]);
}

}  // namespace
}  // namespace stormbroker
