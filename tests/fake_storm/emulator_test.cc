// The emulator's behaviour, driven directly (no HTTP): auth, two-factor, both
// token clocks, encodings, methods with data.
#include "emulator.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "encoding/yaml_json.h"

namespace fake_storm {
namespace {

constexpr const char* kTotpSecret = "JBSWY3DPEHPK3PXP";

std::string Basic(const std::string& user, const std::string& secret) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = user + ":" + secret, out;
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16 |
                 (i + 1 < in.size() ? static_cast<unsigned char>(in[i + 1]) << 8 : 0) |
                 (i + 2 < in.size() ? static_cast<unsigned char>(in[i + 2]) : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return "Basic " + out;
}

std::string Envelope(const nlohmann::json& params) { return nlohmann::json{{"params", params}}.dump(); }

// The current passcode from oathtool, an implementation independent of ours.
// Waits out the last seconds of a step so the code is still current when used.
std::string OathtoolCode() {
  while (std::time(nullptr) % 30 >= 27) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  FILE* pipe = popen((std::string("oathtool --totp -b ") + kTotpSecret).c_str(), "r");
  char line[32] = {};
  if (!pipe || !fgets(line, sizeof line, pipe)) ADD_FAILURE() << "oathtool did not run";
  if (pipe) pclose(pipe);
  return std::string(line, 6);
}

class EmulatorTest : public ::testing::Test {
 protected:
  EmulatorTest() : emulator_(Users(), ServerCatalog::Generated(60), ShortLimits()) {}

  static std::vector<User> Users() { return {{"plain", "pw1", ""}, {"twofa", "pw2", kTotpSecret}}; }
  static Options ShortLimits() {
    Options options;
    options.hard_limit = std::chrono::seconds(100);
    options.max_timeout = 60;
    options.default_timeout = 20;
    return options;
  }
  Reply Call(const std::string& path, const std::string& user, const std::string& secret,
             const nlohmann::json& params = nlohmann::json::object(), const std::string& passcode = "") {
    return emulator_.Handle({path, Basic(user, secret), passcode, Envelope(params)});
  }
  std::string Login(int timeout) {
    Reply reply = Call("Account/Auth/token", "plain", "pw1", {{"timeout", timeout}});
    EXPECT_EQ(reply.http_status, 200) << reply.body.dump();
    return reply.body.value("token", "");
  }
  long long NowEpoch() {
    return std::chrono::duration_cast<std::chrono::seconds>(emulator_.Now().time_since_epoch()).count();
  }

  Emulator emulator_;
};

TEST_F(EmulatorTest, PasswordAndTokenAuthentication) {
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", "pw1").body, nlohmann::json({{"ping", "success"}}));
  std::string token = Login(30);
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", token).http_status, 200);
  Reply wrong = Call("Utilities/Info/ping", "plain", "nope");
  EXPECT_EQ(wrong.http_status, 401);
  EXPECT_EQ(wrong.body["error_class"], "LW::Exception::Authorization");
  EXPECT_EQ(wrong.body["username"], "plain");
  EXPECT_EQ(wrong.body["error_message"], wrong.body["full_message"]);
  EXPECT_EQ(Call("Utilities/Info/ping", "twofa", token).http_status, 401) << "a token is bound to its user";
  EXPECT_EQ(emulator_.Handle({"Utilities/Info/ping", "", "", ""}).http_status, 401);
}

TEST_F(EmulatorTest, OathtoolPasscodeIsAcceptedOnceThenRejected) {
  std::string code = OathtoolCode();
  Reply first = Call("Account/Auth/token", "twofa", "pw2", {}, code);
  EXPECT_EQ(first.http_status, 200) << first.body.dump();
  Reply again = Call("Account/Auth/token", "twofa", "pw2", {}, code);
  EXPECT_EQ(again.http_status, 401);
  EXPECT_NE(again.body["full_message"].get<std::string>().find("already used"), std::string::npos);
  // The token it bought needs no passcode.
  EXPECT_EQ(Call("Utilities/Info/ping", "twofa", first.body["token"]).http_status, 200);
  auto counters = emulator_.Counters();
  EXPECT_EQ(counters["auth"]["password+passcode"], 1);
  EXPECT_EQ(counters["auth"]["token"], 1);
  EXPECT_EQ(counters["auth"]["rejected"], 1);
}

TEST_F(EmulatorTest, MissingOrWrongPasscodeIsRefused) {
  Reply missing = Call("Utilities/Info/ping", "twofa", "pw2");
  EXPECT_EQ(missing.http_status, 401);
  EXPECT_NE(missing.body["full_message"].get<std::string>().find("required"), std::string::npos);
  std::string code = OathtoolCode();
  std::string wrong = code == "000000" ? "000001" : "000000";
  Reply bad = Call("Utilities/Info/ping", "twofa", "pw2", {}, wrong);
  EXPECT_EQ(bad.http_status, 401);
  EXPECT_NE(bad.body["full_message"].get<std::string>().find("invalid"), std::string::npos);
  Reply wrong_password = Call("Utilities/Info/ping", "twofa", "pw-wrong", {}, code);
  EXPECT_EQ(wrong_password.http_status, 401);
}

TEST_F(EmulatorTest, TokenDiesAfterItsInactivityTimeout) {
  std::string token = Login(10);
  emulator_.ShiftClock(std::chrono::seconds(9));
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", token).http_status, 200) << "activity extends it";
  emulator_.ShiftClock(std::chrono::seconds(9));
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", token).http_status, 200);
  emulator_.ShiftClock(std::chrono::seconds(11));
  Reply dead = Call("Utilities/Info/ping", "plain", token);
  EXPECT_EQ(dead.http_status, 401);
  EXPECT_EQ(dead.body["error_class"], "LW::Exception::Authorization");
}

TEST_F(EmulatorTest, KeepAliveExtendsButNeverPastTheHardLimit) {
  long long created = NowEpoch();
  std::string token = Login(60);
  for (int minute = 0; minute < 3; ++minute) {
    emulator_.ShiftClock(std::chrono::seconds(30));
    Reply kept = Call("Account/Auth/token", "plain", token, {{"timeout", 60}});
    ASSERT_EQ(kept.http_status, 200) << kept.body.dump();
    EXPECT_EQ(kept.body["token"], token) << "keep-alive returns the same token";
    EXPECT_LE(kept.body["expires"].get<long long>(), created + 100 + 1);
    EXPECT_GE(kept.body["expires"].get<long long>(), std::min(NowEpoch() + 59, created + 99));
  }
  emulator_.ShiftClock(std::chrono::seconds(11));  // 101 s after creation: past the 100 s hard limit
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", token).http_status, 401);
  EXPECT_EQ(Call("Account/Auth/token", "plain", token).http_status, 401);
}

TEST_F(EmulatorTest, TimeoutIsValidated) {
  Reply high = Call("Account/Auth/token", "plain", "pw1", {{"timeout", 61}});
  EXPECT_EQ(high.body["error_class"], "LW::Exception::Input::OutOfBounds");
  EXPECT_EQ(high.body["max"], 60);
  EXPECT_EQ(high.body["field"], "timeout");
  Reply text = Call("Account/Auth/token", "plain", "pw1", {{"timeout", "soon"}});
  EXPECT_EQ(text.body["error_class"], "LW::Exception::Input::Validation");
  Reply fallback = Call("Account/Auth/token", "plain", "pw1");
  EXPECT_NEAR(fallback.body["expires"].get<long long>(), NowEpoch() + 20, 1) << "default timeout";
}

TEST_F(EmulatorTest, ExpireTokenKillsTheTokenUsed) {
  std::string token = Login(30);
  EXPECT_EQ(Call("Account/Auth/expireToken", "plain", token).body, nlohmann::json({{"expired", 1}}));
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", token).http_status, 401);
}

TEST_F(EmulatorTest, EncodingsFollowTheExtension) {
  Reply yaml = emulator_.Handle({"Storm/Server/details.yaml", Basic("plain", "pw1"), "", "params:\n  uniq_id: ABC007\n"});
  EXPECT_EQ(yaml.encoding, "yaml");
  EXPECT_EQ(yaml.body["uniq_id"], "ABC007");
  // YAML round trip: what the emulator renders parses back to the same value.
  auto parsed = stormbroker::ParseYaml(stormbroker::RenderYaml(yaml.body));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, yaml.body);
  nlohmann::json tricky = {{"s", "123"}, {"b", "true"}, {"n", nullptr}, {"e", ""}, {"c", "a: b"}, {"i", 5}, {"f", 1.5}};
  EXPECT_EQ(*stormbroker::ParseYaml(stormbroker::RenderYaml(tricky)), tricky);

  EXPECT_EQ(Call("Utilities/Info/ping.json", "plain", "pw1").encoding, "json");
  Reply bad = Call("Utilities/Info/ping.xml", "plain", "pw1");
  EXPECT_EQ(bad.body["error_class"], "LW::Exception::API::InvalidEncoding");
  EXPECT_EQ(bad.body["encoding"], "xml");
  Reply garbage = emulator_.Handle({"Utilities/Info/ping", Basic("plain", "pw1"), "", "{not json"});
  EXPECT_EQ(garbage.body["error_class"], "LW::Exception::Deserialize");
}

TEST_F(EmulatorTest, MethodPathsAreCaseInsensitiveAndUnknownOnesInvalid) {
  EXPECT_EQ(Call("UTILITIES/info/PING", "plain", "pw1").body["ping"], "success");
  Reply unknown = Call("blah/blah", "plain", "pw1");
  EXPECT_EQ(unknown.http_status, 200);
  EXPECT_EQ(unknown.body["error_class"], "LW::Exception::API::InvalidMethod");
  EXPECT_EQ(unknown.body["method"], "blah/blah");
}

TEST_F(EmulatorTest, ServerListPaginates) {
  Reply page = Call("Storm/Server/list", "plain", "pw1", {{"page_num", 3}, {"page_size", 25}});
  EXPECT_EQ(page.body["item_total"], 60);
  EXPECT_EQ(page.body["page_total"], 3);
  EXPECT_EQ(page.body["item_count"], 10);
  EXPECT_EQ(page.body["items"].size(), 10u);
  EXPECT_EQ(page.body["items"][0]["uniq_id"], "ABC051");
  EXPECT_EQ(Call("Storm/Server/list", "plain", "pw1", {{"page_size", 1000}}).body["error_class"],
            "LW::Exception::Input::OutOfBounds");
  EXPECT_EQ(Call("Storm/Server/list", "plain", "pw1", {{"page_num", "x"}}).body["error_class"],
            "LW::Exception::Input::Validation");
}

TEST_F(EmulatorTest, ServerDetailsNeedsAKnownUniqId) {
  Reply missing = Call("Storm/Server/details", "plain", "pw1");
  EXPECT_EQ(missing.body["error_class"], "LW::Exception::Input::Required");
  EXPECT_EQ(missing.body["field"], "uniq_id");
  Reply unknown = Call("Storm/Server/details", "plain", "pw1", {{"uniq_id", "NOPE"}});
  EXPECT_EQ(unknown.body["error_class"], "LW::Exception::RecordNotFound");
  EXPECT_EQ(unknown.body["input"], "NOPE");
}

TEST_F(EmulatorTest, CountersAreExact) {
  std::string token = Login(30);
  for (int i = 0; i < 3; ++i) Call("Utilities/Info/ping", "plain", token);
  Call("Utilities/Info/ping", "plain", "pw1");
  Call("Utilities/Info/ping", "plain", "wrong");
  auto counters = emulator_.Counters();
  EXPECT_EQ(counters["methods"]["utilities/info/ping"],
            nlohmann::json({{"password", 1}, {"password+passcode", 0}, {"token", 3}}));
  EXPECT_EQ(counters["methods"]["account/auth/token"],
            nlohmann::json({{"password", 1}, {"password+passcode", 0}, {"token", 0}}));
  EXPECT_EQ(counters["methods"]["storm/server/list"],
            nlohmann::json({{"password", 0}, {"password+passcode", 0}, {"token", 0}}))
      << "every implemented method is listed";
  EXPECT_FALSE(counters["methods"].contains("utilities/info/pnig"));
  EXPECT_EQ(counters["auth"], nlohmann::json({{"password", 2}, {"password+passcode", 0}, {"token", 3}, {"rejected", 1}}));
  emulator_.Reset();
  EXPECT_EQ(emulator_.Counters()["auth"]["token"], 0);
  EXPECT_EQ(Call("Utilities/Info/ping", "plain", token).http_status, 401) << "reset forgets tokens";
}

TEST(FaultPlanTest, CountsAndMethodFilters) {
  std::string error;
  FaultPlan plan;
  plan.Add(*ParseFault({{"kind", "status500"}, {"count", 2}, {"method", "Utilities/Info/ping"}}, &error));
  EXPECT_FALSE(plan.Take("account/auth/token", ""));
  EXPECT_TRUE(plan.Take("utilities/info/ping", ""));
  EXPECT_TRUE(plan.Take("utilities/info/ping", ""));
  EXPECT_FALSE(plan.Take("utilities/info/ping", ""));
  EXPECT_FALSE(ParseFault({{"kind", "explode"}}, &error));
  EXPECT_NE(error.find("explode"), std::string::npos);
  EXPECT_FALSE(ParseFault({{"kind", "delay"}}, &error));
  plan.Add(*ParseFault({{"kind", "reject_token"}, {"token", "T1"}}, &error));
  EXPECT_FALSE(plan.Take("x/y", "T2"));
  EXPECT_TRUE(plan.Take("x/y", "T1"));
}

}  // namespace
}  // namespace fake_storm
