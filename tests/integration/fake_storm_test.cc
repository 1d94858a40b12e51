// The emulator as a client of the API sees it: over real HTTPS, with the
// control interface arming faults and moving the clock.

#include <gtest/gtest.h>

#include "harness.h"

namespace {

using harness::Binary;
using harness::RunCommand;

const std::string kEnvelope = R"({"params":{}})";

class FakeStormTest : public ::testing::Test {
 protected:
  FakeStormTest()
      : storm_(dir_, {{"bot", "pw", ""}}, {"--hard-limit", "100", "--max-timeout", "60"}) {}

  std::string Login() {
    auto result = storm_.Api("Account/Auth/token", R"({"params":{"timeout":60}})", "bot", "pw");
    EXPECT_EQ(result.status, 200) << result.body << result.transport_error;
    return nlohmann::json::parse(result.body)["token"];
  }
  void Arm(const nlohmann::json& fault) { storm_.Arm(fault.dump()); }

  harness::TempDir dir_;
  harness::FakeStorm storm_;
};

TEST_F(FakeStormTest, ServesHttpsWithADateHeader) {
  EXPECT_EQ(storm_.url().rfind("https://127.0.0.1:", 0), 0u) << storm_.url();
  auto ping = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", "pw");
  EXPECT_EQ(ping.status, 200);
  EXPECT_EQ(nlohmann::json::parse(ping.body), nlohmann::json({{"ping", "success"}}));
  EXPECT_NE(ping.date_header.find("GMT"), std::string::npos) << ping.date_header;
}

TEST_F(FakeStormTest, AnswersYamlInYaml) {
  auto result = storm_.Api("Storm/Server/details.yaml", "params:\n  uniq_id: ABC002\n", "bot", "pw");
  EXPECT_EQ(result.status, 200);
  EXPECT_NE(result.body.find("uniq_id: ABC002"), std::string::npos) << result.body;
  EXPECT_EQ(result.body.find('{'), std::string::npos) << "not JSON: " << result.body;
}

TEST_F(FakeStormTest, EachInjectedFaultIsSeenByAClient) {
  std::string token = Login();
  Arm({{"kind", "status500"}});
  auto internal = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token);
  EXPECT_EQ(internal.status, 500);
  EXPECT_EQ(nlohmann::json::parse(internal.body)["error_class"], "LW::Exception::API::Internal");

  Arm({{"kind", "maintenance"}});
  auto maintenance = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token);
  EXPECT_EQ(maintenance.status, 503);
  EXPECT_EQ(nlohmann::json::parse(maintenance.body)["error_class"], "LW::Exception::API::Maintenance");

  Arm({{"kind", "rate_limit"}});
  auto limited = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token);
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(nlohmann::json::parse(limited.body)["error_class"], "LW::Exception::API::RateLimit");
  EXPECT_EQ(nlohmann::json::parse(limited.body)["method"], "utilities/info/ping");

  Arm({{"kind", "reset"}});
  auto reset = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token);
  EXPECT_EQ(reset.status, 0);
  EXPECT_FALSE(reset.transport_error.empty());

  Arm({{"kind", "reject_token"}, {"token", token}});
  EXPECT_EQ(storm_.Api("Utilities/Info/ping", kEnvelope, "bot", "pw").status, 200) << "a password is not that token";
  EXPECT_EQ(storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token).status, 401);

  Arm({{"kind", "delay"}, {"delay_ms", 300}});
  auto started = std::chrono::steady_clock::now();
  auto delayed = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token);
  EXPECT_EQ(delayed.status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));

  // Every fault was for one call: the next one is normal, and all were counted.
  EXPECT_EQ(storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token).status, 200);
  EXPECT_EQ(storm_.Counters()["faults"],
            nlohmann::json({{"delay", 1}, {"maintenance", 1}, {"rate_limit", 1}, {"reject_token", 1},
                            {"reset", 1}, {"status500", 1}}));
  EXPECT_EQ(storm_.Control("GET", "/faults"), nlohmann::json::array());
}

TEST_F(FakeStormTest, FaultsForAWindowAndForOneMethodAndDisarming) {
  Arm({{"kind", "maintenance"}, {"seconds", 60}, {"method", "Utilities/Info/ping"}});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(storm_.Api("Utilities/Info/ping", kEnvelope, "bot", "pw").status, 503);
  EXPECT_EQ(storm_.Api("Utilities/Info/version", kEnvelope, "bot", "pw").status, 200);
  storm_.Control("DELETE", "/faults");
  EXPECT_EQ(storm_.Api("Utilities/Info/ping", kEnvelope, "bot", "pw").status, 200);
  long status = 0;
  auto refused = storm_.Control("POST", "/faults", R"({"kind":"meteor"})", &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(refused["error"].get<std::string>().find("meteor"), std::string::npos);
}

TEST_F(FakeStormTest, ShiftingTheClockExpiresTokensAndMovesTheDateHeader) {
  std::string token = Login();
  long long before = storm_.Control("GET", "/clock")["now"];
  auto after = storm_.Control("POST", "/clock", R"({"advance": 3600})");
  EXPECT_GE(after["now"].get<long long>(), before + 3600);
  EXPECT_EQ(after["shift"], 3600);
  auto expired = storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token);
  EXPECT_EQ(expired.status, 401);
  EXPECT_EQ(nlohmann::json::parse(expired.body)["error_class"], "LW::Exception::Authorization");
  storm_.Control("POST", "/reset");
  EXPECT_EQ(storm_.Control("GET", "/clock")["shift"], 0);
}

TEST_F(FakeStormTest, RevokedTokenIsRefused) {
  std::string token = Login();
  EXPECT_EQ(storm_.Revoke(token), 1);
  EXPECT_EQ(storm_.Api("Utilities/Info/ping", kEnvelope, "bot", token).status, 401);
}

TEST(FakeStormCommandLine, HelpAndBadFlags) {
  auto help = RunCommand({Binary("fake_storm"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* needle : {"--users", "--plain", "--hard-limit", "/faults", "/clock"}) {
    EXPECT_NE(help.out.find(needle), std::string::npos) << needle;
  }
  auto bad = RunCommand({Binary("fake_storm"), "--frobnicate"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--frobnicate"), std::string::npos);
  auto no_tls = RunCommand({Binary("fake_storm"), "--users", "/dev/null"});
  EXPECT_EQ(no_tls.exit_code, 2);
  EXPECT_NE(no_tls.err.find("--plain"), std::string::npos) << no_tls.err;
}

TEST(FakeStormPlain, ServesPlainHttpByFlag) {
  harness::TempDir dir;
  harness::FakeStorm storm(dir, {{"bot", "pw", ""}}, {"--plain"});
  EXPECT_EQ(storm.url().rfind("http://127.0.0.1:", 0), 0u) << storm.url();
  EXPECT_EQ(storm.Api("Utilities/Info/ping", kEnvelope, "bot", "pw").status, 200);
}

}  // namespace
