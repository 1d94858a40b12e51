#include "access/browser_check.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

TEST(BrowserCheckTest, ABrowserOrAForeignHostIsRefusedOnTheTcpDoor) {
  auto hosts = DoorHosts("127.0.0.1", 8089);
  EXPECT_TRUE(CheckBrowserHeaders("127.0.0.1:8089", "", "", hosts).ok());
  EXPECT_TRUE(CheckBrowserHeaders("LOCALHOST:8089", "", "", hosts).ok());
  EXPECT_TRUE(CheckBrowserHeaders("[::1]:8089", "", "none", hosts).ok());
  EXPECT_TRUE(CheckBrowserHeaders("127.0.0.1:8089", "", "same-origin", hosts).ok());
  EXPECT_FALSE(CheckBrowserHeaders("rebind.attacker.example:8089", "", "", hosts).ok());
  EXPECT_FALSE(CheckBrowserHeaders("127.0.0.1:9999", "", "", hosts).ok()) << "another port";
  EXPECT_FALSE(CheckBrowserHeaders("", "", "", hosts).ok()) << "no Host at all";
  EXPECT_FALSE(CheckBrowserHeaders("127.0.0.1:8089", "https://evil.example", "", hosts).ok());
  EXPECT_FALSE(CheckBrowserHeaders("127.0.0.1:8089", "null", "", hosts).ok());
  EXPECT_FALSE(CheckBrowserHeaders("127.0.0.1:8089", "", "cross-site", hosts).ok());
  auto v6 = DoorHosts("::1", 80);
  EXPECT_TRUE(CheckBrowserHeaders("localhost", "", "", v6).ok()) << "the scheme's default port left out";
  EXPECT_TRUE(CheckBrowserHeaders("[::1]:80", "", "", v6).ok());
}

}  // namespace
}  // namespace stormbroker
