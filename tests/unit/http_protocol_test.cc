// The HTTP doors' protocol module: what a request line names, the envelope's
// params, the API's answer shapes, the token dance, and the checks that keep
// browsers out of a loopback TCP door.
#include "doors/http/http_protocol.h"

#include "broker/token_dance.h"

#include <gtest/gtest.h>

namespace stormbroker::http {
namespace {

TEST(HttpProtocolTest, ATargetNamesTheVersionTheMethodAndTheEncoding) {
  auto plain = ParseTarget("/v1/Storm/Server/list");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->version, "v1");
  EXPECT_EQ(plain->method, "Storm/Server/list");
  EXPECT_EQ(plain->encoding, "json");
  auto yaml = ParseTarget("/BLEED/utilities/info/PING.YAML");
  ASSERT_TRUE(yaml.ok());
  EXPECT_EQ(yaml->version, "bleed");
  EXPECT_EQ(yaml->method, "utilities/info/PING");
  EXPECT_EQ(yaml->encoding, "yaml");
  EXPECT_EQ(ParseTarget("/v1/a.b/c")->encoding, "json") << "a dot before the last slash is no extension";
  EXPECT_EQ(ParseTarget("/v2/Storm/Server/list").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ParseTarget("/").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(IsKnownEncoding("xml"));
}

TEST(HttpProtocolTest, ParamsComeFromTheEnvelopeWithinTheBounds) {
  EXPECT_EQ(*ParseParams("", "json"), nlohmann::json::object());
  EXPECT_EQ(*ParseParams("{}", "json"), nlohmann::json::object());
  EXPECT_EQ(*ParseParams(R"({"params": null, "metadata": {}})", "json"), nlohmann::json::object());
  EXPECT_EQ(*ParseParams(R"({"params": {"a": 1}})", "json"), nlohmann::json({{"a", 1}}));
  EXPECT_EQ(*ParseParams("params:\n  a: 1\n", "yaml"), nlohmann::json({{"a", 1}}));
  EXPECT_FALSE(ParseParams(R"({"params": [1]})", "json").ok());
  EXPECT_FALSE(ParseParams("[1]", "json").ok());
  auto deep = ParseParams(R"({"params": {"a": )" + std::string(100, '[') + std::string(100, ']') + "}}", "json");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper than 64"), std::string::npos);
  auto secret = ParseParams(R"({"params": {"password": "hunter2"} oops)", "json");
  ASSERT_FALSE(secret.ok());
  EXPECT_EQ(secret.status().message().find("hunter2"), std::string::npos) << "a refusal never quotes the body";
}

TEST(HttpProtocolTest, RefusalsComeInTheApisErrorShapeWithTheirHttpStatus) {
  const std::vector<std::pair<Status, unsigned>> cases = {
      {InvalidArgument("x"), 400},  {PermissionDenied("x"), 403},   {NotFound("x"), 404},
      {ResourceExhausted("x"), 429}, {FailedPrecondition("x"), 503}, {Unavailable("x"), 503},
      {Status(StatusCode::kDeadlineExceeded, "x"), 504}, {Internal("x"), 500}};
  for (const auto& [status, http] : cases) {
    Reply reply = FromStatus(status);
    EXPECT_EQ(reply.status, http);
    EXPECT_EQ(reply.body["full_message"], "x");
    EXPECT_EQ(reply.body["error_message"], "x");
    EXPECT_EQ(reply.body["error_class"].get<std::string>().rfind("StormBroker::", 0), 0u);
  }
  ApiOutcome exception;
  exception.is_error = true;
  exception.error = {"LW::Exception::RecordNotFound", "no such server", {{"field", "uniq_id"}}, 200};
  Reply api = FromApi(exception);
  EXPECT_EQ(api.status, 200u) << "the API's own status";
  EXPECT_EQ(api.body["field"], "uniq_id");
  EXPECT_EQ(api.body["error_class"], "LW::Exception::RecordNotFound");
  EXPECT_EQ(InvalidEncoding("xml").body["encoding"], "xml");
  EXPECT_EQ(MethodNotAllowed(InvalidArgument("GET")).headers.front(), (std::pair<std::string, std::string>{"Allow", "POST"}));
  auto [yaml, type] = Render({200, {{"a", 1}}, {}}, "yaml");
  EXPECT_EQ(std::string(type), "application/yaml");
  EXPECT_EQ(yaml, "a: 1\n");
}

TEST(HttpProtocolTest, AYamlStringThatIsNotUtf8IsRefusedNotCarried) {
  // Found by request_fuzz: YAML takes the bytes, and JSON's dump() threw on
  // them in the core (a crash of the daemon by any caller allowed a method).
  auto params = ParseParams("params:\n  name: \"\xff\xfe\"\n", "yaml");
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(params.status().message().find("UTF-8"), std::string::npos);
  EXPECT_TRUE(ParseParams("params:\n  name: \"caf\xc3\xa9\"\n", "yaml").ok());
}

TEST(HttpProtocolTest, ASlowDownSaysWhenToComeBackInWholeSeconds) {
  Reply reply = FromStatus(ResourceExhausted("slow down").WithRetryAfter(std::chrono::milliseconds(1200)));
  EXPECT_EQ(reply.status, 429u);
  EXPECT_EQ(reply.body["error_class"], "StormBroker::ResourceExhausted");
  ASSERT_EQ(reply.headers.size(), 1u);
  EXPECT_EQ(reply.headers[0], (std::pair<std::string, std::string>{"Retry-After", "2"}));
  EXPECT_EQ(FromStatus(ResourceExhausted("x").WithRetryAfter(std::chrono::milliseconds(1))).headers[0].second, "1");
  EXPECT_TRUE(FromStatus(ResourceExhausted("a limit of the caller's own")).headers.empty());
}

TEST(HttpProtocolTest, TheCallersTimeoutIsSecondsAboveZeroAndAtMostAnHour) {
  EXPECT_EQ(ParseTimeout("")->has_value(), false);
  EXPECT_EQ(**ParseTimeout("2.5"), std::chrono::milliseconds(2500));
  EXPECT_EQ(**ParseTimeout("3600"), std::chrono::milliseconds(3600000));
  for (const char* bad : {"0", "0.0", "3601", "-1", "1e3", "inf", "nan", "0x10", "1.2.3", " 1", "99999999999999"}) {
    auto parsed = ParseTimeout(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("X-Stormbroker-Timeout"), std::string::npos);
  }
}

TEST(HttpProtocolTest, TheTokenDanceIsRecognisedInAnyCaseAndAnswersAHandle) {
  EXPECT_EQ(TokenDanceOf("ACCOUNT/auth/Token"), TokenDance::kToken);
  EXPECT_EQ(TokenDanceOf("account/auth/expiretoken"), TokenDance::kExpireToken);
  EXPECT_EQ(TokenDanceOf("Account/Auth/other"), TokenDance::kNone);
  nlohmann::json first = TokenHandle(1'900'000'000), second = TokenHandle(1'900'000'000);
  EXPECT_EQ(first["expires"], 1'900'000'000);
  EXPECT_EQ(first["token"].get<std::string>().size(), 32u);
  EXPECT_NE(first["token"], second["token"]) << "a new random handle each time";
}

// One table for every door's refusals: the API's error shape with the
// status each code reads as, Retry-After in whole seconds.
TEST(HttpProtocolTest, RefusalsReadInTheCoresOneShape) {
  struct Case {
    Status status;
    unsigned http;
    const char* error_class;
  };
  for (const Case& c : std::vector<Case>{
           {InvalidArgument("x"), 400, "StormBroker::InvalidRequest"},
           {PermissionDenied("x"), 403, "StormBroker::PermissionDenied"},
           {NotFound("x"), 404, "StormBroker::NotFound"},
           {TooLarge("x"), 413, "StormBroker::RequestTooLarge"},
           {ResourceExhausted("x"), 429, "StormBroker::ResourceExhausted"},
           {FailedPrecondition("x"), 503, "StormBroker::NeedsLogin"},
           {Unavailable("x"), 503, "StormBroker::Unavailable"},
           {Status(StatusCode::kDeadlineExceeded, "x"), 504, "StormBroker::DeadlineExceeded"},
           {Internal("x"), 500, "StormBroker::Internal"}}) {
    Reply reply = FromStatus(c.status);
    EXPECT_EQ(reply.status, c.http) << c.error_class;
    EXPECT_EQ(reply.body["error_class"], c.error_class);
    EXPECT_EQ(reply.body["error_message"], "x");
    EXPECT_EQ(reply.body["full_message"], "x");
  }
  Reply later = FromStatus(ResourceExhausted("slow down").WithRetryAfter(std::chrono::milliseconds(1200)));
  ASSERT_EQ(later.headers.size(), 1u);
  EXPECT_EQ(later.headers[0], (std::pair<std::string, std::string>("Retry-After", "2")));
  EXPECT_EQ(later.body["retry_after"], 2);
}

// The bytes a caller chose, percent-decoded, used to reach a strict dump()
// in refusals and end the daemon: every refusal renders, in both encodings,
// and quotes those bytes only as printable ASCII.
TEST(HttpProtocolTest, EveryRefusalOfTheHeadRendersWhateverBytesItQuotes) {
  struct Case {
    std::string method, url;
    unsigned status;
  };
  for (const Case& c : std::vector<Case>{{"POST", "/\xff/Storm/Server/list", 404},
                                         {"POST", "/v1/Storm/Server/list.\xff", 200},
                                         {"G\xffT", "/v1/Storm/Server/list", 405},
                                         {"POST", "/v1/Storm/Server/list." + std::string(39, 'a') + "\xc3\xa9", 200}}) {
    auto read = ReadHead(c.method, c.url, "", "");
    auto* refusal = std::get_if<Refusal>(&read);
    ASSERT_NE(refusal, nullptr) << c.url;
    EXPECT_EQ(refusal->reply.status, c.status) << c.url;
    for (const char* encoding : {"json", "yaml"}) {
      auto [text, type] = Render(refusal->reply, encoding);
      for (unsigned char byte : text) EXPECT_LT(byte, 0x80) << c.url << ": " << text;
    }
    EXPECT_NE(refusal->why.message().find("\\x"), std::string::npos) << refusal->why.message();
  }
  auto fine = ReadHead("POST", "/v1/Utilities/Info/ping.YAML", "2.5", "10");
  ASSERT_NE(std::get_if<Head>(&fine), nullptr);
  EXPECT_EQ(std::get<Head>(fine).target.encoding, "yaml");
  EXPECT_EQ(std::get<Head>(fine).timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(std::get<Head>(fine).announced_body, 10u);
  // Any body an answer carries renders, bytes that are not UTF-8 as U+FFFD.
  auto [json, type] = Render(Reply{500, ErrorBody("X", "\xff"), {}}, "json");
  EXPECT_TRUE(nlohmann::json::accept(json)) << json;
}

}  // namespace
}  // namespace stormbroker::http
