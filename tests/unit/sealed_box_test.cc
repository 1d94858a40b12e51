// What the fleet writes to etcd: sealed under the fleet key, bound to its
// place, and readable back only whole and unaltered.
#include "secret/sealed_box.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "fleet/fleet_keys.h"
#include "fleet/fleet_records.h"

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

TEST(FleetRecordsTest, ATokenRecordCarriesTheTokenAndItsDeadlines) {
  FleetToken token{Secret("tok-123"), std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'123)),
                   std::chrono::system_clock::time_point(std::chrono::milliseconds(1'790'000'000'456))};
  auto back = DecodeTokenBody(EncodeTokenBody(token));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->token.Reveal(), "tok-123");
  EXPECT_EQ(back->hard_deadline, token.hard_deadline);
  EXPECT_EQ(back->inactivity_deadline, token.inactivity_deadline);
  EXPECT_FALSE(DecodeTokenBody(Secret("12 34\n")).ok()) << "no token";
  EXPECT_FALSE(DecodeTokenBody(Secret("tok-123")).ok()) << "no deadlines";
  EXPECT_FALSE(DecodeTokenBody(Secret("12 x34\ntok")).ok());
}

// A record opens only under the key it was written for: not under another
// account, login ID or fleet, and not altered; inside, when it was issued.
TEST(FleetRecordsTest, ARecordIsBoundToItsKeyAndSaysWhenItWasIssued) {
  FleetKeys keys{"/stormbroker/farm"};
  auto issued = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'123));
  auto sealed = SealRecord(Key('k'), keys.LoginRequests("prod") + "id1", issued, "id1\n123456");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->find("123456"), std::string::npos);
  auto opened = OpenRecord(Key('k'), keys.LoginRequests("prod") + "id1", *sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(opened->issued, issued);
  EXPECT_EQ(opened->body.Reveal(), "id1\n123456");
  EXPECT_FALSE(OpenRecord(Key('k'), keys.LoginRequests("prod") + "id2", *sealed).ok()) << "replayed under a new ID";
  EXPECT_FALSE(OpenRecord(Key('k'), keys.LoginRequests("staging") + "id1", *sealed).ok()) << "another account";
  EXPECT_FALSE(OpenRecord(Key('k'), FleetKeys{"/other"}.LoginRequests("prod") + "id1", *sealed).ok());
  EXPECT_FALSE(OpenRecord(Key('x'), keys.LoginRequests("prod") + "id1", *sealed).ok()) << "another fleet key";
  EXPECT_FALSE(OpenRecord(Key('k'), keys.LoginRequests("prod") + "id1", "sb1garbage").ok());
}

TEST(FleetRecordsTest, FreshMeansWithinTheLifetimeAndNotFromTheFuture) {
  auto now = std::chrono::system_clock::now();
  EXPECT_TRUE(IsFresh(now, now));
  EXPECT_TRUE(IsFresh(now - kRecordLifetime + std::chrono::seconds(1), now));
  EXPECT_FALSE(IsFresh(now - kRecordLifetime - std::chrono::seconds(1), now)) << "stale: played back later";
  EXPECT_TRUE(IsFresh(now + kClockSkew - std::chrono::seconds(1), now)) << "a writer's clock a little ahead";
  EXPECT_FALSE(IsFresh(now + kClockSkew + std::chrono::seconds(1), now));
}

TEST(FleetKeysTest, KeysAndTheirParts) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  FleetKeys keys{"/stormbroker/farm"};
  EXPECT_EQ(keys.Candidates("prod"), "/stormbroker/farm/leader/prod/");
  EXPECT_EQ(keys.Candidacy("prod", 0x1234), "/stormbroker/farm/leader/prod/0000000000001234");
  EXPECT_EQ(LeaseOfCandidacy(keys.Candidacy("prod", 0x7fabcdef12345678)), 0x7fabcdef12345678);
  EXPECT_EQ(LeaseOfCandidacy("/stormbroker/farm/leader/prod/1234"), std::nullopt);
  EXPECT_EQ(LeaseOfCandidacy("/stormbroker/farm/leader/prod/000000000000123g"), std::nullopt);
  EXPECT_EQ(keys.Token("prod"), "/stormbroker/farm/token/prod");
}

}  // namespace
}  // namespace stormbroker
