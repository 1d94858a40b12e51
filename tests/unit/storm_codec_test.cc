#include "upstream/storm_codec.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

TEST(StormCodecTest, EncodesTheEnvelope) {
  EXPECT_EQ(nlohmann::json::parse(EncodeEnvelope({{"a", 1}})), nlohmann::json({{"params", {{"a", 1}}}}));
  EXPECT_EQ(nlohmann::json::parse(EncodeEnvelope(nullptr)), nlohmann::json({{"params", nlohmann::json::object()}}));
}

TEST(StormCodecTest, DecodesAResult) {
  auto outcome = DecodeResponse(200, R"({"ping":"success"})");
  ASSERT_TRUE(outcome.ok());
  EXPECT_FALSE(outcome->is_error);
  EXPECT_EQ(outcome->result["ping"], "success");
}

TEST(StormCodecTest, DecodesAnExceptionWithHttp200AndKeepsExtraKeys) {
  auto outcome = DecodeResponse(
      200, R"({"error_class":"LW::Exception::Input::OutOfBounds","full_message":"too big","field":"timeout","max":3600})");
  ASSERT_TRUE(outcome.ok());
  ASSERT_TRUE(outcome->is_error);
  EXPECT_EQ(outcome->error.error_class, "LW::Exception::Input::OutOfBounds");
  EXPECT_EQ(outcome->error.message, "too big");
  EXPECT_EQ(outcome->error.extra, nlohmann::json({{"field", "timeout"}, {"max", 3600}}));
  EXPECT_EQ(outcome->error.http_status, 200);
  EXPECT_FALSE(IsAuthorizationFailure(outcome->error));
  EXPECT_FALSE(IsTransientFailure(outcome->error));
}

TEST(StormCodecTest, ReadsEitherMessageKey) {
  auto seed = DecodeResponse(401, R"({"error_class":"LW::Exception::Authorization","error_message":"no"})");
  ASSERT_TRUE(seed.ok());
  EXPECT_EQ(seed->error.message, "no");
  EXPECT_TRUE(IsAuthorizationFailure(seed->error));
}

TEST(StormCodecTest, ClassifiesTransientFaults) {
  auto maintenance = DecodeResponse(503, R"({"error_class":"LW::Exception::API::Maintenance","full_message":"m"})");
  ASSERT_TRUE(maintenance.ok());
  EXPECT_TRUE(IsTransientFailure(maintenance->error));
  auto rate = DecodeResponse(200, R"({"error_class":"LW::Exception::API::RateLimit","full_message":"r"})");
  EXPECT_TRUE(IsTransientFailure(rate->error));
}

TEST(StormCodecTest, NonApiAnswersAreUnavailable) {
  auto html = DecodeResponse(502, "<html>Bad Gateway</html>");
  ASSERT_FALSE(html.ok());
  EXPECT_EQ(html.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(html.status().message().find("502"), std::string::npos);
  auto bare = DecodeResponse(500, R"({"oops":1})");
  EXPECT_EQ(bare.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(DecodeResponse(200, "").ok());
}

}  // namespace
}  // namespace stormbroker
