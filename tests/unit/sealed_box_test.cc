// What the fleet writes to etcd: sealed under the fleet key, bound to its
// place, and readable back only whole and unaltered.
#include "fleet/sealed_box.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "fleet/fleet_keys.h"

namespace stormbroker {
namespace {

Secret Key(char fill) { return Secret(std::string(kFleetKeyBytes, fill)); }

TEST(SealedBoxTest, OpensOnlyWithTheSameKeyAndContextAndUnaltered) {
  auto sealed = Seal(Key('k'), "fleet a\ntoken\nprod", "the-token-itself");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("the-token-itself"), std::string::npos);
  auto opened = Unseal(Key('k'), "fleet a\ntoken\nprod", *sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(opened->Reveal(), "the-token-itself");

  EXPECT_FALSE(Unseal(Key('x'), "fleet a\ntoken\nprod", *sealed).ok()) << "another fleet key";
  EXPECT_FALSE(Unseal(Key('k'), "fleet a\ntoken\nstaging", *sealed).ok()) << "copied to another account";
  EXPECT_FALSE(Unseal(Key('k'), "fleet b\ntoken\nprod", *sealed).ok()) << "copied to another fleet";
  std::string altered = *sealed;
  altered[altered.size() / 2] ^= 1;
  EXPECT_FALSE(Unseal(Key('k'), "fleet a\ntoken\nprod", altered).ok());
  EXPECT_FALSE(Unseal(Key('k'), "fleet a\ntoken\nprod", sealed->substr(0, 20)).ok());
  EXPECT_NE(*Seal(Key('k'), "c", "same"), *Seal(Key('k'), "c", "same")) << "a fresh nonce each time";
}

TEST(SealedBoxTest, TheFleetKeyIs32BytesRawOrInHex) {
  char dir_template[] = "/tmp/fleet-key-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  auto write = [&](const std::string& name, const std::string& content) {
    std::string path = dir + "/" + name;
    std::ofstream(path) << content;
    chmod(path.c_str(), 0600);
    return path;
  };
  auto hex = ReadFleetKey(write("hex", std::string(64, 'a') + "\n"));
  ASSERT_TRUE(hex.ok()) << hex.status().message();
  EXPECT_EQ(hex->Reveal(), std::string(32, '\xaa'));
  EXPECT_TRUE(ReadFleetKey(write("raw", std::string(32, 'r'))).ok());
  auto short_key = ReadFleetKey(write("short", "abc"));
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.status().message().find("openssl rand -hex 32"), std::string::npos);
  EXPECT_FALSE(ReadFleetKey(write("nothex", std::string(64, 'z'))).ok());
  std::filesystem::remove_all(dir);
}

TEST(FleetKeysTest, ATokenRecordCarriesTheTokenAndItsDeadlines) {
  FleetToken token{Secret("tok-123"), std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'123)),
                   std::chrono::system_clock::time_point(std::chrono::milliseconds(1'790'000'000'456))};
  auto back = DecodeTokenRecord(EncodeTokenRecord(token));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->token.Reveal(), "tok-123");
  EXPECT_EQ(back->hard_deadline, token.hard_deadline);
  EXPECT_EQ(back->inactivity_deadline, token.inactivity_deadline);
  EXPECT_FALSE(DecodeTokenRecord(Secret("12 34\n")).ok()) << "no token";
  EXPECT_FALSE(DecodeTokenRecord(Secret("tok-123")).ok()) << "no deadlines";
}

TEST(FleetKeysTest, APrefixRangeEndsJustPastThePrefix) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  FleetKeys keys{"/stormbroker/farm"};
  EXPECT_EQ(keys.Candidates("prod"), "/stormbroker/farm/leader/prod/");
  EXPECT_EQ(keys.Token("prod"), "/stormbroker/farm/token/prod");
  EXPECT_NE(keys.SealContext("token", "prod"), keys.SealContext("login", "prod"));
}

}  // namespace
}  // namespace stormbroker
