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

TEST(RequestCheckTest, TheApisCredentialMethodsAreReservedInAnyCaseAndEncoding) {
  for (const char* reserved : {"Account/Auth/token", "ACCOUNT/auth/TOKEN", "account/auth/expireToken.json",
                               "Account/Auth/token.yaml", "account/auth", "Account/Auth.json",
                               "account/auth/anything/else"}) {
    EXPECT_TRUE(IsReservedMethod(reserved)) << reserved;
  }
  for (const char* free : {"Account/Details", "Utilities/Info/ping", "Account/Authx/token", "My/Account/Auth/token",
                           "account", ""}) {
    EXPECT_FALSE(IsReservedMethod(free)) << free;
  }
  Status refusal = ReservedMethodRefusal("Account/Auth/token");
  EXPECT_EQ(refusal.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(refusal.message().find("GetToken"), std::string::npos);
  EXPECT_NE(refusal.message().find("Logout"), std::string::npos);
}

TEST(RequestCheckTest, APasscodeIsSixToEightDigitsAndNothingElse) {
  for (const char* good : {"123456", "0000000", "12345678"}) EXPECT_TRUE(CheckPasscode(good).ok()) << good;
  for (const std::string& bad : {std::string(""), std::string("12345"), std::string("123456789"),
                                 std::string("12345a"), std::string("123456\r\nX-Evil: 1"), std::string(" 123456"),
                                 std::string("123 456"), std::string("123456\n"), std::string("123") + '\0' + "456"}) {
    EXPECT_EQ(CheckPasscode(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace stormbroker
