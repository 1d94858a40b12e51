#include "access/request_check.h"

#include <gtest/gtest.h>

namespace stormbroker {
namespace {

TEST(RequestCheckTest, AcceptsMethodPaths) {
  for (const char* good : {"Utilities/Info/ping", "utilities/info/ping", "Storm/Server/list", "Account/Auth/token",
                           "Network/LoadBalancer/add_node", "a/b"}) {
    EXPECT_TRUE(CheckMethodPath(good).ok()) << good;
  }
}

TEST(RequestCheckTest, RejectsAnythingThatCouldChangeTheUrl) {
  const std::string too_long = "A/" + std::string(kMaxMethodLength, 'b');
  for (const std::string& bad :
       {std::string(""), std::string("ping"), std::string("/Utilities/Info/ping"), std::string("Utilities/Info/ping/"),
        std::string("Utilities//ping"), std::string("../etc/passwd"), std::string("Utilities/Info/ping?x=1"),
        std::string("Utilities/Info/p%69ng"), std::string("Utilities/Info/ping.json"), std::string("Utilities/In fo"),
        std::string("Utilities/Info/ping\r\nX: y"), std::string("Utilities/Info/\x01"), std::string("a/b/c/d/e/f/g/h/i"),
        std::string("Utilities/Info/p\xc3\xa9ng"), std::string("Utilities\\Info"), too_long}) {
    Status status = CheckMethodPath(bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(status.message().empty());
  }
}

}  // namespace
}  // namespace stormbroker
