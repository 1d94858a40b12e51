#include "tokens/totp.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "secret/base32.h"

namespace stormbroker {
namespace {

TEST(TotpTest, Rfc6238AppendixBSha1Vectors) {
  const std::string key = "12345678901234567890";
  const std::pair<int64_t, const char*> vectors[] = {{59, "94287082"},         {1111111109, "07081804"},
                                                     {1111111111, "14050471"}, {1234567890, "89005924"},
                                                     {2000000000, "69279037"}, {20000000000, "65353130"}};
  for (const auto& [time, code] : vectors) EXPECT_EQ(TotpCode(key, TotpStep(time), 8), code) << time;
}

TEST(TotpTest, SixDigitCodesAreZeroPadded) {
  // RFC 4226 Appendix D: HOTP values for counters 0..9, last six digits.
  const std::string key = "12345678901234567890";
  const char* expected[] = {"755224", "287082", "359152", "969429", "338314",
                            "254676", "287922", "162583", "399871", "520489"};
  for (int counter = 0; counter < 10; ++counter) EXPECT_EQ(TotpCode(key, counter), expected[counter]);
}

TEST(TotpTest, AgreesWithOathtool) {
  const char* secret = "JBSWY3DPEHPK3PXP";
  auto key = DecodeBase32(secret);
  ASSERT_TRUE(key.ok());
  for (int64_t time : {0LL, 59LL, 1'700'000'000LL, 1'900'000'029LL}) {
    std::string command = "oathtool --totp -b --now=@" + std::to_string(time) + " " + secret;
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    char line[32] = {};
    ASSERT_NE(fgets(line, sizeof line, pipe), nullptr) << "is oathtool installed (scripts/setup)?";
    pclose(pipe);
    EXPECT_EQ(TotpCode(*key, TotpStep(time)), std::string(line, 6)) << time;
  }
}

TEST(Base32Test, DecodesLikeAuthenticatorApps) {
  EXPECT_EQ(*DecodeBase32("MZXW6YTBOI======"), "foobar");
  EXPECT_EQ(*DecodeBase32("mzxw 6ytb oi"), "foobar");
  EXPECT_FALSE(DecodeBase32("MZXW1").ok());
  EXPECT_FALSE(DecodeBase32("").ok());
  EXPECT_EQ(DecodeBase32("s3cr3t!").status().message().find("s3cr3t"), std::string::npos);
}

}  // namespace
}  // namespace stormbroker
