#include "tokens/token_reply.h"
#include "upstream/storm_client.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Result<StormReply> Answer(nlohmann::json result, std::optional<long long> server_time = std::nullopt) {
  StormReply reply;
  reply.outcome.result = std::move(result);
  reply.server_time = server_time;
  return reply;
}

Result<StormReply> Exception(long http_status, const std::string& error_class, const std::string& message = "") {
  StormReply reply;
  reply.outcome.is_error = true;
  reply.outcome.error.error_class = error_class;
  reply.outcome.error.message = message;
  reply.outcome.error.http_status = http_status;
  return reply;
}

TEST(ReplyVerdictTest, ClassifiesEachKindOfAnswer) {
  EXPECT_EQ(ClassifyReply(Answer({{"token", "t"}, {"expires", 1}})), ReplyVerdict::kAnswered);
  EXPECT_EQ(ClassifyReply(Exception(401, "LW::Exception::Authorization")), ReplyVerdict::kCredentialRefused);
  EXPECT_EQ(ClassifyReply(Exception(200, "LW::Exception::Input::Validation")), ReplyVerdict::kRefused);
  EXPECT_EQ(ClassifyReply(Exception(503, "LW::Exception::Maintenance")), ReplyVerdict::kFault);
  EXPECT_EQ(ClassifyReply(Unavailable("connection refused")), ReplyVerdict::kFault);
}

TEST(ReplyVerdictTest, StatusNamesTheExceptionOrPassesTheTransportFault) {
  EXPECT_TRUE(ReplyStatus(Answer(nlohmann::json::object())).ok());
  Status refused = ReplyStatus(Exception(401, "LW::Exception::Authorization", "bad password"));
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.message(), "LW::Exception::Authorization: bad password (HTTP 401)");
  EXPECT_EQ(ReplyStatus(Exception(200, "LW::Exception::X")).message(), "LW::Exception::X");
  Status down = ReplyStatus(Unavailable("upstream: connection refused"));
  EXPECT_EQ(down.message(), "upstream: connection refused");
}

TEST(TokenReplyTest, RequestAsksForTheTimeoutInSeconds) {
  EXPECT_EQ(TokenRequestParams(milliseconds(300000)), nlohmann::json({{"timeout", 300}}));
}

TEST(TokenReplyTest, GrantCountsFromTheServersOwnClock) {
  // The server's clock is an hour ahead of ours: what counts is expires - Date.
  auto grant = ReadTokenGrant(*Answer({{"token", "abc"}, {"expires", 1000 + 3600 + 300}}, 1000 + 3600),
                              milliseconds(300000), /*wall_now_seconds=*/1000);
  ASSERT_TRUE(grant.ok()) << grant.status().message();
  EXPECT_EQ(grant->token.Reveal(), "abc");
  EXPECT_EQ(grant->inactivity, seconds(300));
  EXPECT_FALSE(grant->ends_early);
}

TEST(TokenReplyTest, GrantWithoutDateHeaderUsesOurClockAndNeverExceedsWhatWasAsked) {
  auto grant = ReadTokenGrant(*Answer({{"token", "abc"}, {"expires", 5000}}), milliseconds(300000), 1000);
  ASSERT_TRUE(grant.ok());
  EXPECT_EQ(grant->inactivity, seconds(300));  // 4000 s left, 300 asked
}

TEST(TokenReplyTest, GrantShorterThanAskedEndsEarly) {
  auto grant = ReadTokenGrant(*Answer({{"token", "abc"}, {"expires", 1060}}, 1000), milliseconds(300000), 0);
  ASSERT_TRUE(grant.ok());
  EXPECT_EQ(grant->inactivity, seconds(60));
  EXPECT_TRUE(grant->ends_early);
  // A second or two less is the server's clock ticking, not a limit.
  auto close = ReadTokenGrant(*Answer({{"token", "abc"}, {"expires", 1299}}, 1000), milliseconds(300000), 0);
  ASSERT_TRUE(close.ok());
  EXPECT_FALSE(close->ends_early);
  // Already expired by the server's clock: no life left, never negative.
  auto gone = ReadTokenGrant(*Answer({{"token", "abc"}, {"expires", 900}}, 1000), milliseconds(300000), 0);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->inactivity, milliseconds(0));
}

TEST(TokenReplyTest, AnswerWithoutTokenOrExpiryIsUnavailable) {
  for (const auto& body : {nlohmann::json::object(), nlohmann::json({{"token", "abc"}}),
                           nlohmann::json({{"expires", 5}}), nlohmann::json({{"token", ""}, {"expires", 5}}),
                           nlohmann::json({{"token", 7}, {"expires", 5}}),
                           nlohmann::json({{"token", "abc"}, {"expires", "soon"}}), nlohmann::json::array()}) {
    auto grant = ReadTokenGrant(*Answer(body), milliseconds(300000), 0);
    ASSERT_FALSE(grant.ok()) << body.dump();
    EXPECT_EQ(grant.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(grant.status().message().find("without a token and expiry time"), std::string::npos);
  }
}

}  // namespace
}  // namespace stormbroker
