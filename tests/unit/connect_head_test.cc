// The proxy door's reading of a request head and its choice of tunnels.
#include "doors/proxy/connect_head.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

const std::vector<std::string> kHosts = {"api.stormondemand.com", "api.liquidweb.com"};

TEST(ConnectHeadTest, ReadsTheHeadAndLeavesWhatFollowsIt) {
  std::string head = "CONNECT api.stormondemand.com:443 HTTP/1.1\r\nHost: api.stormondemand.com:443\r\n"
                     "User-Agent: python-requests/2.28\r\n\r\n";
  // A client that sends its TLS hello with the CONNECT, in two pieces.
  std::string stream = head + "\x16\x03\x01\x02\x00";
  ConnectHead parsed;
  auto first = parsed.Feed(std::string_view(stream).substr(0, 20));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 20u);
  EXPECT_FALSE(parsed.complete());
  auto rest = parsed.Feed(std::string_view(stream).substr(20));
  ASSERT_TRUE(rest.ok()) << rest.status().message();
  EXPECT_EQ(20 + *rest, head.size()) << "the TLS bytes are not the head's";
  EXPECT_TRUE(parsed.complete());
  EXPECT_TRUE(parsed.is_connect());
  EXPECT_EQ(parsed.target(), "api.stormondemand.com:443");
}

TEST(ConnectHeadTest, APlainProxyRequestIsCompleteButNoConnect) {
  ConnectHead parsed;
  ASSERT_TRUE(parsed.Feed("GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n").ok());
  EXPECT_TRUE(parsed.complete());
  EXPECT_FALSE(parsed.is_connect());
}

TEST(ConnectHeadTest, RefusesWhatIsNotHttpAndHeadsWithoutEnd) {
  ConnectHead tls;
  EXPECT_EQ(tls.Feed("\x16\x03\x01\x02\x00\x01").status().code(), StatusCode::kInvalidArgument);
  ConnectHead endless;
  ASSERT_TRUE(endless.Feed("CONNECT api.stormondemand.com:443 HTTP/1.1\r\n").ok());
  Status refused;
  for (int i = 0; i < 1000 && refused.ok(); ++i) refused = endless.Feed("X-Padding: aaaaaaaaaaaaaaaa\r\n").status();
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("longer than"), std::string::npos) << refused.message();
}

// (Whether a tunnel may go there is the core's decision: broker_core_test.)
TEST(ConnectHeadTest, ATargetIsAHostInLowerCaseAndAPort) {
  auto target = ParseTunnelTarget("API.StormOnDemand.com:443");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->host, "api.stormondemand.com");
  EXPECT_EQ(target->port, 443);
  auto v6 = ParseTunnelTarget("[::1]:8443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8443);
  EXPECT_FALSE(ParseTunnelTarget("api.stormondemand.com").ok());
  EXPECT_FALSE(ParseTunnelTarget("/v1/Account/details").ok());
}

}  // namespace
}  // namespace stormbroker
